"""SplitQuantScale.

    Quant(x, s, z, b)       =>  Div(x, s) -> Quant(., 1, z, b) -> Mul(s)
    BipolarQuant(x, s)      =>  BipolarQuant(x, 1) -> Mul(s)

for activation quantizers (non-constant input) with a scale other than 1. Afterwards every
activation quantizer outputs the integer levels themselves; the float scale is a plain Mul that
later rewrites move into the next layer. The division matches the one inside Quant exactly, so
the rewrite does not change a single output bit.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError
from hwgen.transforms.graph import add_const, const, insert_after, make_node, new_tensor
from hwgen.transforms.quant import quant_output_dtype


class SplitQuantScale(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for q in model.graph.node:
            if q.op_type not in ("Quant", "BipolarQuant") or const(model, q.input[0]) is not None:
                continue
            params = [const(model, name) for name in q.input[1:]]
            if any(p is None for p in params):
                raise HwgenError("quantizer parameters must be constants", where=f"node {q.name}")
            if q.op_type == "Quant" and (params[1].size != 1 or params[2].size != 1):
                raise HwgenError("zero point and bit width must be scalars", where=f"node {q.name}")
            if q.op_type == "Quant" and (float(params[1].reshape(-1)[0]) % 1 != 0):
                raise HwgenError("zero point must be an integer", where=f"node {q.name}")
            matches.append((q, params[0].astype(np.float32)))
        rewritten = 0
        for q, scale in matches:
            if np.any(scale <= 0):
                raise HwgenError("quantizer scale must be positive", where=f"node {q.name}")
            model.set_tensor_datatype(q.output[0], quant_output_dtype(model, q))
            if np.all(scale == 1.0):
                continue
            out = q.output[0]
            levels = new_tensor(model, out, dtype=quant_output_dtype(model, q))
            one = add_const(model, np.ones_like(scale))
            q.input[1] = one
            q.output[0] = levels
            new = [make_node("Mul", [levels, add_const(model, scale)], [out], name=f"{q.name}_scale")]
            if q.op_type == "Quant":
                divided = new_tensor(model, q.input[0])
                div = make_node("Div", [q.input[0], add_const(model, scale)], [divided], name=f"{q.name}_div")
                q.input[0] = divided
                index = list(model.graph.node).index(q)
                model.graph.node.insert(index, div)
            insert_after(model, q, new)
            model.set_tensor_datatype(out, DataType["FLOAT32"])
            rewritten += 1
        return model, rewritten > 0

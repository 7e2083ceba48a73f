"""MoveScalarMulPastMatMul.

    Mul(x, s) -> MatMul(., W)   =>  MatMul(x, W) -> Mul(s)        (s a scalar constant)

Moves activation scales off the integer datapath: the MatMul then sees the integer levels and the
scale joins the elementwise chain that becomes the next thresholds (or the host's output transform).
"""

from __future__ import annotations

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import const, insert_after, is_scalar, new_tensor, single_consumer


class MoveScalarMulPastMatMul(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for mul in model.graph.node:
            if mul.op_type != "Mul" or not is_scalar(const(model, mul.input[1])):
                continue
            mm = single_consumer(model, mul.output[0])
            if mm is not None and mm.op_type == "MatMul" and mm.input[0] == mul.output[0] \
                    and const(model, mm.input[1]) is not None:
                matches.append((mul, mm))
        for mul, mm in matches:
            x, s = mul.input
            out = mm.output[0]
            acc = new_tensor(model, out)
            mm.input[0] = x
            mm.output[0] = acc
            mul.input[0], mul.output[0] = acc, out
            model.graph.node.remove(mul)
            insert_after(model, mm, [mul])
            model.set_tensor_datatype(out, DataType["FLOAT32"])
        return model, bool(matches)

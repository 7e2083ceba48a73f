"""MoveScalarMulPastMatMul.

    Mul(x, s) -> MatMul(., W)   =>  MatMul(x, W) -> Mul(s)        (s a scalar constant)
    Mul(x, s) -> Conv(., W)     =>  Conv(x, W)   -> Mul(s)        (also with zero padding)
    Mul(x, s) -> MaxPool        =>  MaxPool(x)   -> Mul(s)        (s > 0)
    Mul(x, s) -> Reshape        =>  Reshape(x)   -> Mul(s)

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
            if mm is None or mm.input[0] != mul.output[0]:
                continue
            s = float(const(model, mul.input[1]).reshape(-1)[0])
            linear = mm.op_type in ("MatMul", "Conv") and const(model, mm.input[1]) is not None
            if linear or mm.op_type in ("Reshape", "Flatten") or (mm.op_type == "MaxPool" and s > 0):
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

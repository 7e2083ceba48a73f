"""MoveScalarMulPastMatMul.

    Mul(x, s) -> MatMul(., W)   =>  MatMul(x, W) -> Mul(s)        (s a scalar constant)
    Mul(x, s) -> Conv(., W)     =>  Conv(x, W)   -> Mul(s)        (also with zero padding)
    Mul(x, s) -> MaxPool        =>  MaxPool(x)   -> Mul(s)        (s > 0, also one per channel)
    Mul(x, s) -> Reshape        =>  Reshape(x)   -> Mul(s)

Moves activation scales off the integer datapath: the MatMul then sees the integer levels and the
scale joins the elementwise chain that becomes the next thresholds (or the host's output transform).
A scale that is not a power of two was applied inside the model's float dot product and is recorded
as such (`hwgen.transforms.float_ties`): there the model rounds and the integer sum does not.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.float_ties import is_power_of_two, note_inexact_scale
from hwgen.transforms.graph import const, insert_after, is_scalar, new_tensor, single_consumer


def _per_channel(model: ModelWrapper, value: np.ndarray, pool) -> bool:
    """A constant of shape (1, C, 1, 1) (or (C, 1, 1)) for the pool's (N, C, H, W) input."""
    shape = model.get_tensor_shape(pool.input[0])
    full = (1,) * (len(shape) - value.ndim) + value.shape
    return len(full) == len(shape) and full[0] == 1 and full[1] == shape[1] and all(d == 1 for d in full[2:])


class MoveScalarMulPastMatMul(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for mul in model.graph.node:
            value = const(model, mul.input[1]) if mul.op_type == "Mul" else None
            if value is None:
                continue
            mm = single_consumer(model, mul.output[0])
            if mm is None or mm.input[0] != mul.output[0]:
                continue
            if not is_scalar(value):
                # a per-channel positive scale commutes with max pooling (rounding is monotone)
                if mm.op_type == "MaxPool" and _per_channel(model, value, mm) and np.all(value > 0):
                    matches.append((mul, mm))
                continue
            s = float(value.reshape(-1)[0])
            linear = mm.op_type in ("MatMul", "Conv") and const(model, mm.input[1]) is not None
            if linear or mm.op_type in ("Reshape", "Flatten") or (mm.op_type == "MaxPool" and s > 0):
                matches.append((mul, mm))
        for mul, mm in matches:
            x, s = mul.input
            out = mm.output[0]
            # a pool or reshape of integers is integers of the same kind; a layer's is inferred later
            keeps = mm.op_type in ("MaxPool", "Reshape", "Flatten")
            if not keeps and not is_power_of_two(const(model, s)):
                note_inexact_scale(model, mul.name)
            acc = new_tensor(model, out, dtype=model.get_tensor_datatype(x) if keeps else None)
            mm.input[0] = x
            mm.output[0] = acc
            mul.input[0], mul.output[0] = acc, out
            model.graph.node.remove(mul)
            insert_after(model, mm, [mul])
            model.set_tensor_datatype(out, DataType["FLOAT32"])
        return model, bool(matches)

"""MergeConcatScales.

    Concat(q0 -> Mul(s0), q1 -> Mul(s1), ...)      =>      Concat(q0, q1, ...) -> Mul(S)

for integer tensors q_i and scalar or per-channel scales s_i, S being the s_i side by side along
the channels (an input with no Mul has scale 1). The branches of a dense block or a reduction
block carry different float scales; concatenated as integers, the one stream holds every
branch's levels, and the per-channel scale joins the chain to the next quantizer (thresholds or
a table per channel), exactly: each element is multiplied by the very same scale as before.
The concatenation's output is annotated with the datatype that holds all inputs.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from hwgen.transforms.graph import add_const, const, insert_after, make_node, new_tensor, single_consumer
from hwgen.units.concat_streams import concat_dtype


def _scaled_integer(model: ModelWrapper, tensor: str, channels: int, rank: int) -> tuple[str, np.ndarray] | None:
    """(integer tensor, per-channel scale of shape (1, C, 1...)) behind a Concat input, or None."""
    ones = [1] * (rank - 2)
    if model.get_tensor_datatype(tensor).is_integer():
        return tensor, np.ones([1, channels, *ones], np.float32)
    mul = model.find_producer(tensor)
    if mul is None or mul.op_type != "Mul" or single_consumer(model, tensor) is None:
        return None
    scale = const(model, mul.input[1])
    if scale is None or not model.get_tensor_datatype(mul.input[0]).is_integer():
        return None
    full = scale.reshape((1,) * (rank - scale.ndim) + scale.shape) if scale.ndim < rank else scale
    if full.ndim != rank or any(d != 1 for d in full.shape[2:]) or full.shape[0] != 1 or full.shape[1] not in (1, channels):
        return None
    return mul.input[0], np.broadcast_to(full, [1, channels, *ones]).astype(np.float32)


class MergeConcatScales(Transformation):
    def apply(self, model: ModelWrapper):
        for concat in model.graph.node:
            if concat.op_type != "Concat":
                continue
            rank = len(model.get_tensor_shape(concat.output[0]))
            if get_by_name(concat.attribute, "axis").i % rank != 1:
                continue
            parts = [_scaled_integer(model, t, model.get_tensor_shape(t)[1], rank) for t in concat.input]
            if any(p is None for p in parts):
                continue
            if all(model.get_tensor_datatype(t).is_integer() for t in concat.input):
                dtype = concat_dtype(tuple(model.get_tensor_datatype(t) for t in concat.input))
                if model.get_tensor_datatype(concat.output[0]) != dtype:
                    model.set_tensor_datatype(concat.output[0], dtype)
                    return model, True
                continue
            self._rewrite(model, concat, parts)
            return model, True
        return model, False

    @staticmethod
    def _rewrite(model: ModelWrapper, concat, parts: list[tuple[str, np.ndarray]]) -> None:
        muls = [model.find_producer(t) for t in concat.input]
        integers = [p[0] for p in parts]
        scale = np.concatenate([p[1] for p in parts], axis=1)
        dtype = concat_dtype(tuple(model.get_tensor_datatype(t) for t in integers))
        joined = new_tensor(model, concat.output[0], dtype=dtype)
        out = concat.output[0]
        concat.input[:] = integers
        concat.output[0] = joined
        insert_after(model, concat, [make_node("Mul", [joined, add_const(model, scale)], [out],
                                               name=f"{concat.name}_scales")])
        for mul, t in zip(muls, integers):
            if mul is not None and mul.op_type == "Mul" and mul.input[0] == t:
                model.graph.node.remove(mul)

"""RemoveReshapesAroundElementwise.

    x (N, C) -> Unsqueeze(axes=[2]) -> BatchNormalization -> Squeeze(axes=[2]) -> y (N, C)
      =>  x -> BatchNormalization -> y

and likewise for any chain of per-channel elementwise ops (Mul, Add, Sub, Div, Relu, ...) between
an Unsqueeze that only appends trailing size-1 axes and a Squeeze that takes them off again. Older
exporters wrote a 1-D BatchNorm that way. The reshapes only move values' shapes; parameters of
the ops inside are reshaped to broadcast over the smaller rank exactly as they did over the larger.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.chain import ELEMENTWISE
from hwgen.transforms.graph import add_const, const, single_consumer


def _trailing_unsqueeze(model: ModelWrapper, node) -> bool:
    """Whether `node` only appends size-1 axes after the existing ones."""
    before, after = model.get_tensor_shape(node.input[0]), model.get_tensor_shape(node.output[0])
    if before is None or after is None or len(after) <= len(before):
        return False
    return list(after[: len(before)]) == list(before) and all(d == 1 for d in after[len(before):])


def _shrink(value: np.ndarray, big_rank: int, small_rank: int) -> np.ndarray | None:
    """A parameter that broadcast over rank `big_rank`, reshaped for rank `small_rank` (the dropped
    trailing axes must be 1), or None when it does not fit."""
    if value.ndim > big_rank:
        return None
    full = value.reshape((1,) * (big_rank - value.ndim) + value.shape)
    if any(d != 1 for d in full.shape[small_rank:]):
        return None
    return full.reshape(full.shape[:small_rank])


def _shrunk_params(model: ModelWrapper, chain: list, big: int, small: int) -> dict | None:
    """(position in chain, input index) -> the parameter reshaped for the smaller rank, or None
    if one does not fit."""
    params = {}
    for position, n in enumerate(chain):
        if n.op_type == "BatchNormalization":
            continue  # per-channel 1-D parameters, whatever the rank
        for index, name in enumerate(n.input[1:], start=1):
            value = const(model, name)
            shrunk = None if value is None else _shrink(value, big, small)
            if shrunk is None:
                return None
            params[(position, index)] = shrunk
    return params


class RemoveReshapesAroundElementwise(Transformation):
    def apply(self, model: ModelWrapper):
        for unsq in [n for n in model.graph.node if n.op_type == "Unsqueeze"]:
            if not _trailing_unsqueeze(model, unsq):
                continue
            chain, node = [], single_consumer(model, unsq.output[0])
            while node is not None and node.op_type in ELEMENTWISE:
                chain.append(node)
                node = single_consumer(model, node.output[0])
            small_shape = model.get_tensor_shape(unsq.input[0])
            if not chain or node is None or node.op_type != "Squeeze" \
                    or model.get_tensor_shape(node.output[0]) != small_shape:
                continue
            params = _shrunk_params(model, chain, len(model.get_tensor_shape(unsq.output[0])), len(small_shape))
            if params is None:
                continue
            chain[0].input[0] = unsq.input[0]
            chain[-1].output[0] = node.output[0]
            for (position, index), value in params.items():
                name = chain[position].input[index]
                chain[position].input[index] = add_const(model, value, model.get_tensor_datatype(name))
            for n in chain[:-1]:
                model.set_tensor_shape(n.output[0], small_shape)
            model.graph.node.remove(unsq)
            model.graph.node.remove(node)
            return model, True
        return model, False

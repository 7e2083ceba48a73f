"""Shapes of integer-graph tensors in the terms hardware units use: a (N, C, H, W) or (N, C)
tensor is `pixels` = H*W vectors of `channels` = C elements on a channel-last stream."""

from __future__ import annotations

import math

from qonnx.core.modelwrapper import ModelWrapper


def channels_and_pixels(model: ModelWrapper, tensor: str) -> tuple[int, int]:
    shape = model.get_tensor_shape(tensor)
    return int(shape[1]), int(math.prod(shape[2:])) if len(shape) > 2 else 1

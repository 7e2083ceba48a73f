"""CollapsePerPixelConstants.

    Add(x, B)   B: (1, C, H, W), the same at every pixel   =>   Add(x, b)   b: (1, C, 1, 1)
    (likewise Mul, Sub, Div, and the slope of PRelu)

The official ReActNet and Bi-Real code writes its per-channel shift as `x + self.bias.expand_as(x)`,
which the exporter turns into an Expand of a constant; folded, it is a constant with one copy of
the channel's value per pixel. Streamlining folds per-channel parameters into thresholds and
scaled adds and refuses parameters that vary over pixels; one whose every pixel holds the same
value is a per-channel parameter written large, and collapses to one value per channel (exactly:
the elementwise result is the same number at every pixel).
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import add_const, const

#: elementwise ops whose constant operand may be a per-channel parameter broadcast over the pixels
ELEMENTWISE_WITH_PARAMETERS = ("Add", "Sub", "Mul", "Div", "PRelu")


def per_channel(value: np.ndarray) -> np.ndarray | None:
    """`value` (N, C, spatial...) as (N, C, 1, ...) where every pixel holds the same values, else None."""
    if value.ndim < 3 or np.prod(value.shape[2:]) == 1:
        return None
    first = value[(slice(None), slice(None)) + (slice(0, 1),) * (value.ndim - 2)]
    return first if np.array_equal(np.broadcast_to(first, value.shape), value) else None


class CollapsePerPixelConstants(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in model.graph.node:
            if node.op_type not in ELEMENTWISE_WITH_PARAMETERS:
                continue
            for i, name in enumerate(node.input):
                value = const(model, name)
                others = [model.get_tensor_shape(t) for t in node.input if t != name]
                if value is None or any(list(s or []) != list(model.get_tensor_shape(node.output[0]) or [0])
                                        for s in others):
                    continue  # the constant's shape decides the output's: it stays as it is
                collapsed = per_channel(value)
                if collapsed is not None:
                    node.input[i] = add_const(model, collapsed)
                    changed = True
        return model, changed

"""DivByPowerOfTwoToMul.

    Div(x, c)   =>   Mul(x, 1/c)        for a constant c whose every element is +-2^k

Dividing by a power of two and multiplying by its reciprocal round the same real number, so the
two agree bit for bit; the Mul is then a scale like any other and moves through the graph. A Div by
any other constant (x / 255) stays a Div: its reciprocal is not exact, and the elementwise chains
that become thresholds run it as the model wrote it.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import add_const, const


def exact_reciprocal(value: np.ndarray) -> np.ndarray | None:
    """1/value in float32 when every element is a power of two with a normal reciprocal, else None."""
    v = np.asarray(value, dtype=np.float32)
    if v.size == 0 or np.any(v == 0) or not np.all(np.isfinite(v)):
        return None
    mantissa, exponent = np.frexp(np.abs(v.astype(np.float64)))
    if not np.all(mantissa == 0.5) or np.any(np.abs(exponent - 1) > 126):
        return None
    return (np.float32(1.0) / v).astype(np.float32)


class DivByPowerOfTwoToMul(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in model.graph.node:
            if node.op_type != "Div" or len(node.input) != 2:
                continue
            value = const(model, node.input[1])
            reciprocal = None if value is None else exact_reciprocal(value)
            if reciprocal is None:
                continue
            node.op_type = "Mul"
            node.input[1] = add_const(model, reciprocal)
            changed = True
        return model, changed

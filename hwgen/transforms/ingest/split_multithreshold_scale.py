"""SplitMultiThresholdScale.

    MultiThreshold(x; out_scale=a, out_bias=b)           levels a*k + b, k = 0..T
      =>  MultiThreshold(x; 1, n) -> Mul(a)               levels not all integers, b = a*n (n integer)
      =>  MultiThreshold(x; 1, 0) -> Mul(a) -> Add(b)     otherwise

FINN-ONNX graphs write activations as MultiThresholds whose `out_scale` / `out_bias` fold the
activation's float scale in. Split that way, every MultiThreshold outputs integer levels and the
float scale is a plain Mul (and Add) that streamlining moves like any other scale. The first form
is taken only where it computes the very same float32 values as the original for every level
(checked on all T+1 levels), else the second, which is always exact. A MultiThreshold whose levels
are integers already (a bipolar one: a = 2, b = -1) keeps its attributes; its output is annotated
with the datatype of its levels. A `data_layout` other than channels-on-axis-1 is handled by
`MultiThresholdChannelsFirst`.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError
from hwgen.transforms.graph import add_const, const, insert_after, make_node, new_tensor
from hwgen.transforms.quant import dtype_for_levels


def _levels(count: int, scale: float, bias: float) -> np.ndarray:
    """What qonnx's MultiThreshold computes for counts 0..count: float32 `scale * k + bias`."""
    k = np.arange(count + 1, dtype=np.float32)
    return (k * np.float32(scale) + np.float32(bias)).astype(np.float32)


class SplitMultiThresholdScale(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for mt in [n for n in model.graph.node if n.op_type == "MultiThreshold"]:
            op = getCustomOp(mt)
            a, b = float(op.get_nodeattr("out_scale")), float(op.get_nodeattr("out_bias"))
            thresholds = const(model, mt.input[1])
            if thresholds is None or thresholds.ndim != 2:
                raise HwgenError("thresholds must be a constant (channels, steps) array", where=f"node {mt.name}")
            count = int(thresholds.shape[1])
            levels = _levels(count, a, b)
            dtype = dtype_for_levels(levels)
            if dtype is not None:
                if model.get_tensor_datatype(mt.output[0]) != dtype or op.get_nodeattr("out_dtype") != dtype.name:
                    op.set_nodeattr("out_dtype", dtype.name)
                    model.set_tensor_datatype(mt.output[0], dtype)
                    changed = True
                continue
            self._split(model, mt, op, count, a, b, levels)
            changed = True
        return model, changed

    @staticmethod
    def _split(model: ModelWrapper, mt, op, count: int, a: float, b: float, levels: np.ndarray) -> None:
        out = mt.output[0]
        n = b / a
        integer_bias = n == round(n) and np.array_equal(
            (_levels(count, 1.0, round(n)) * np.float32(a)).astype(np.float32), levels)
        bias = float(round(n)) if integer_bias else 0.0
        dtype = dtype_for_levels(_levels(count, 1.0, bias))
        ints = new_tensor(model, out, dtype=dtype)
        op.set_nodeattr("out_scale", 1.0)
        op.set_nodeattr("out_bias", bias)
        op.set_nodeattr("out_dtype", dtype.name)
        mt.output[0] = ints
        scaled = out if integer_bias else new_tensor(model, out)
        nodes = [make_node("Mul", [ints, add_const(model, a)], [scaled], name=f"{mt.name}_out_scale")]
        if not integer_bias:
            nodes.append(make_node("Add", [scaled, add_const(model, b)], [out], name=f"{mt.name}_out_bias"))
        insert_after(model, mt, nodes)
        model.set_tensor_datatype(out, DataType["FLOAT32"])

"""Integer-graph ops (domain `hwgen.ops.integer`) that streamlining makes where ONNX has no exact
integer op: a table lookup, a scaled sum of two integer tensors, a window sum.

They live in the streamlined (NCHW, channels on axis 1) graph beside `MultiThreshold`, execute in
numpy on integer values, and become hardware units in TO_HARDWARE (`ChannelwiseLookup`,
`AddStreams`, `SumPool`). Every checkpoint with them stays executable by QONNX.

    Lookup(x, table; in_min, out_dtype)         y[n, c, ...] = table[c or 0, x[n, c, ...] - in_min]
    ScaledAdd(a, b; alpha, beta, out_dtype)     y = alpha * a + beta * b
      (alphas, betas: per channel)              y[n, c, ...] = alphas[c] * a[n, c, ...] + betas[c] * b[n, c, ...]
    SumPool(x; kernel, out_dtype)               y[n, c, i, j] = sum of x over window (i, j);
                                                kernel [0, 0]: the whole image (global pooling)
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp

DOMAIN = "hwgen.ops.integer"


def _ints(x: np.ndarray) -> np.ndarray:
    return np.rint(x).astype(np.int64)


class _IntegerOp(CustomOp):
    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], DataType[self.get_nodeattr("out_dtype")])

    def verify_node(self):
        return []


class Lookup(_IntegerOp):
    def get_nodeattr_types(self):
        return {"in_min": ("i", True, 0), "out_dtype": ("s", True, "")}

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op(model.get_tensor_shape(self.onnx_node.input[0]))

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = _ints(context[node.input[0]])
        table = _ints(context[node.input[1]])
        index = x - self.get_nodeattr("in_min")
        rows = np.zeros(x.shape[1], np.int64) if table.shape[0] == 1 else np.arange(x.shape[1])
        shape = [1, x.shape[1]] + [1] * (x.ndim - 2)
        context[node.output[0]] = table[rows.reshape(shape), index].astype(np.float32)


class ScaledAdd(_IntegerOp):
    def get_nodeattr_types(self):
        return {"alpha": ("i", True, 1), "beta": ("i", True, 1), "out_dtype": ("s", True, ""),
                "alphas": ("ints", False, []), "betas": ("ints", False, [])}

    def coefficients(self) -> tuple[int | list[int], int | list[int]]:
        """(alpha, beta): one each, or one per channel."""
        if self.get_nodeattr("alphas"):
            return list(self.get_nodeattr("alphas")), list(self.get_nodeattr("betas"))
        return self.get_nodeattr("alpha"), self.get_nodeattr("beta")

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op(model.get_tensor_shape(self.onnx_node.input[0]))

    def execute_node(self, context, graph):
        node = self.onnx_node
        a, b = _ints(context[node.input[0]]), _ints(context[node.input[1]])
        alpha, beta = (np.asarray(c, np.int64) for c in self.coefficients())
        if alpha.ndim:  # per channel, on axis 1
            shape = [1, -1] + [1] * (a.ndim - 2)
            alpha, beta = alpha.reshape(shape), beta.reshape(shape)
        y = alpha * a + beta * b
        # float32 holds the sum exactly up to 2^24; a wide join's sums beyond that travel as float64
        context[node.output[0]] = y.astype(np.float64 if np.abs(y).max(initial=0) > (1 << 24) else np.float32)


class SumPool(_IntegerOp):
    def get_nodeattr_types(self):
        return {"kernel": ("ints", True, [0, 0]), "out_dtype": ("s", True, "")}

    def window(self, h: int, w: int) -> tuple[int, int]:
        kh, kw = self.get_nodeattr("kernel")
        return (kh, kw) if kh else (h, w)

    def make_shape_compatible_op(self, model):
        n, c, h, w = model.get_tensor_shape(self.onnx_node.input[0])
        kh, kw = self.window(h, w)
        return self.make_const_shape_op([n, c, h // kh, w // kw])

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = _ints(context[node.input[0]])
        n, c, h, w = x.shape
        kh, kw = self.window(h, w)
        oh, ow = h // kh, w // kw
        y = x[:, :, : oh * kh, : ow * kw].reshape(n, c, oh, kh, ow, kw).sum(axis=(3, 5))
        context[node.output[0]] = y.astype(np.float32)


custom_op = {"Lookup": Lookup, "ScaledAdd": ScaledAdd, "SumPool": SumPool}

"""AnnotateIntegerWeights.

    MatMul(x, W) | Conv(x, W) | Gemm(x, W)     W a FLOAT32 constant of integers
      =>  the same, with W annotated BIPOLAR (all values +-1) or as the smallest INTn / UINTn

FINN-ONNX graphs annotate their weights, but early Brevitas exports binarized weights with a
`Sign` that constant folding turns into a plain +-1 initializer. The annotation states what the
values already are; it lets a +-1 x +-1 layer become an XNOR-popcount layer.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import const, int_dtype_for_range

_LAYERS = ("MatMul", "Conv", "Gemm")


def weight_dtype(w: np.ndarray):
    if w.size == 0 or not np.all(w == np.round(w)):
        return None
    if np.all(np.abs(w) == 1):
        return DataType["BIPOLAR"]
    return int_dtype_for_range(w.min(), w.max())


class AnnotateIntegerWeights(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in model.graph.node:
            if node.op_type not in _LAYERS or len(node.input) < 2:
                continue
            w = const(model, node.input[1])
            if w is None or model.get_tensor_datatype(node.input[1]) != DataType["FLOAT32"]:
                continue
            dtype = weight_dtype(w)
            if dtype is not None:
                model.set_tensor_datatype(node.input[1], dtype)
                changed = True
        return model, changed

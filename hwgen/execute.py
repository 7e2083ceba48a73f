"""Running a graph on a batch: QONNX execution with the batch size the data has.

Exported models often fix the batch dimension to 1 (also inside Reshape constants); running them
one frame at a time through onnxruntime's per-node sessions would be slow, so the graph is re-shaped
to the batch instead.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.change_batchsize import ChangeBatchSize
from qonnx.transformation.infer_shapes import InferShapes


def with_batch(model: ModelWrapper, batch: int) -> ModelWrapper:
    """A copy of `model` whose input, output and Reshape constants use `batch`."""
    if model.get_tensor_shape(model.graph.input[0].name)[0] == batch:
        return model
    clone = ModelWrapper(copy.deepcopy(model.model))
    annotations = {t.name: clone.get_tensor_datatype(t.name) for t in clone.graph.value_info}
    clone = clone.transform(ChangeBatchSize(batch), cleanup=False)
    clone = clone.transform(InferShapes(), cleanup=False)
    for name, dtype in annotations.items():
        clone.set_tensor_datatype(name, dtype)
    return clone


def execute(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    """Run a one-input, one-output graph on a batch `x` (first axis = batch)."""
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    if not model.graph.node:  # nothing to run: only the element type of the output to honour
        elem = model.graph.output[0].type.tensor_type.elem_type
        return np.asarray(x).astype(helper.tensor_dtype_to_np_dtype(elem))
    runnable = with_batch(model, x.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return execute_onnx(runnable, {inp: np.asarray(x, dtype=np.float32)})[out]

"""Running a graph on a batch: QONNX execution with the batch size the data has.

Exported models often fix the batch dimension to 1 (also inside Reshape constants); running them
one frame at a time through onnxruntime's per-node sessions would be slow, so the graph is re-shaped
to the batch instead. A large batch runs in slices of `SLICE_FRAMES`: QONNX's MultiThreshold
compares every value with every threshold at once (frames x channels x pixels x thresholds
booleans), so 10,000 frames of a network with 8-bit activations would need tens of gigabytes.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes

#: frames per QONNX execution of a large batch (a slice's MultiThreshold holds
#: SLICE_FRAMES x channels x pixels x thresholds booleans: 0.6 GB for 32 x 28 x 28 x 255)
SLICE_FRAMES = 100


def with_batch(model: ModelWrapper, batch: int) -> ModelWrapper:
    """A copy of `model` whose tensors (every shape's first axis: the batch) and Reshape constants
    use `batch`. Shapes are rewritten in place rather than inferred again, since some custom ops
    only know their output shape from their input's."""
    if model.get_tensor_shape(model.graph.input[0].name)[0] == batch:
        return _with_shapes(model)
    clone = ModelWrapper(copy.deepcopy(model.model))
    graph = clone.graph
    batched = {graph.input[0].name}  # tensors computed from the input's values carry its batch axis
    for node in graph.node:  # (the node list is topologically sorted)
        if node.op_type != "Shape" and any(name in batched for name in node.input):
            batched.update(node.output)
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        dims = vi.type.tensor_type.shape.dim
        if vi.name in batched and len(dims) > 0:
            dims[0].dim_value = batch
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[0] in batched:  # not a parameter's view(1, -1, 1, 1)
            shape = clone.get_initializer(node.input[1])
            if shape is not None and shape.size and shape[0] != -1:
                shape = shape.copy()
                shape[0] = batch
                clone.set_initializer(node.input[1], shape)
    return _with_shapes(clone)


def _with_shapes(model: ModelWrapper) -> ModelWrapper:
    """`model`, with shapes inferred where an exporter declared none (TorchScript leaves the
    outputs of Conv, BatchNormalization, Add, ... without); QONNX execution needs them all."""
    if model.check_all_tensor_shapes_specified():
        return model
    annotations = {t.name: model.get_tensor_datatype(t.name) for t in model.graph.value_info}
    model = model.transform(InferShapes(), cleanup=False)
    for name, dtype in annotations.items():
        model.set_tensor_datatype(name, dtype)
    return model


def execute(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    """Run a one-input, one-output graph on a batch `x` (first axis = batch)."""
    out = model.graph.output[0].name
    if not model.graph.node:  # nothing to run: only the element type of the output to honour
        elem = model.graph.output[0].type.tensor_type.elem_type
        return np.asarray(x).astype(helper.tensor_dtype_to_np_dtype(elem))
    parts = [context[out] for _, context in execute_in_slices(model, x, full_context=False)]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def execute_in_slices(model: ModelWrapper, x: np.ndarray, full_context: bool = True
                      ) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
    """The run of `x` in `slices`, each slice's frames and the tensors of its run by name (every
    one with `full_context`, else the output): for a caller that needs more of a large run than
    its output. The full slices share one re-batched graph, the last its own."""
    inp = model.graph.input[0].name
    x = np.asarray(x, dtype=np.float32)
    runnable: dict[int, ModelWrapper] = {}
    for part in slices(x.shape[0]):
        piece = x[part]
        if piece.shape[0] not in runnable:
            runnable[piece.shape[0]] = with_batch(model, piece.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            context = execute_onnx(runnable[piece.shape[0]], {inp: piece}, return_full_exec_context=full_context)
        yield part, context


def execute_context(model: ModelWrapper, x: np.ndarray) -> dict[str, np.ndarray]:
    """Like `execute`, but every tensor of the run (inputs, intermediates, output) by name, in one
    piece (a large batch: `execute_in_slices`, since every intermediate is kept)."""
    inp = model.graph.input[0].name
    runnable = with_batch(model, x.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return execute_onnx(runnable, {inp: np.asarray(x, dtype=np.float32)}, return_full_exec_context=True)


def slices(frames: int) -> list[slice]:
    """`frames` in the pieces `execute` runs them in (an empty batch: one empty piece)."""
    return [slice(start, min(frames, start + SLICE_FRAMES)) for start in range(0, max(1, frames), SLICE_FRAMES)]

"""Which elements of a graph's tensors can depend on some marked elements of others.

`verify` excuses an output that differs from the model only where the model's own float rounding
decides it: where an accumulator on that output's path sat within the rounding bound of a
threshold (`hwgen.transforms.float_ties`). Which outputs lie on such a path is a question of
dependence, answered here by running the graph on marks instead of values:

    marks (frames, ...) True where a tie may decide  --node by node-->  marks of the graph's output

An element of a node's output is marked when an element it is computed from is:

- elementwise ops (thresholds, tables, adds and scales, with broadcasting): the same position;
- a dot product (MatMul, Conv, Gemm): the outputs whose weights on a marked input are not zero,
  found by running the node itself on 0/1 inputs with 0/1 weights;
- data movement and pooling (Reshape, Transpose, Concat, Pad, MaxPool, SumPool, ReduceMean, ...):
  the node itself run on 0/1 marks (a sum or a maximum of 0/1 values is positive exactly where a
  marked element entered it);
- anything else (TopK, Softmax, an XNOR dot product): every element of the frame.

The rule over-marks rather than misses: a marked output may not depend on the tie after all, an
unmarked one never does, so an unmarked difference is a real one.
"""

from __future__ import annotations

import warnings

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_node

#: dot products: marks pass where the weights are not zero
WEIGHTED = frozenset({"MatMul", "Conv", "Gemm"})
#: ops whose run on 0/1 marks gives the marks of their output (movement, sums and maxima)
CARRIED = frozenset({
    "Reshape", "Flatten", "Transpose", "Concat", "Slice", "Pad", "Squeeze", "Unsqueeze", "Identity", "Split",
    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax",
    "SumPool", "Resize", "Upsample", "Gather", "DepthToSpace", "SpaceToDepth",
})
#: elementwise ops whose other inputs are parameters or same-shaped streams
ELEMENTWISE = frozenset({
    "MultiThreshold", "Lookup", "Add", "Sub", "Mul", "Div", "Relu", "PRelu", "Clip", "Sign", "Neg", "Abs",
    "Round", "Floor", "Ceil", "Max", "Min", "Where", "Quant", "BipolarQuant", "Trunc", "ScaledAdd",
    "BatchNormalization", "Sigmoid", "Tanh", "Cast", "LeakyRelu", "HardTanh", "Exp", "Log",
})


def propagate(model: ModelWrapper, context: dict[str, np.ndarray], marks: dict[str, np.ndarray]
              ) -> dict[str, np.ndarray]:
    """The marks of every tensor of `model` downstream of `marks` (bool arrays of the tensors'
    shapes, by name), from a run of `model` whose tensors `context` holds (for their shapes and
    the nodes' parameters). Returns `marks` with the new ones added."""
    marks = dict(marks)
    for node in model.graph.node:
        given = [marks.get(name) for name in node.input]
        if not any(m is not None and m.any() for m in given):
            continue
        for out in node.output:
            if out in context:
                marks[out] = _through(model, node, context, marks, out)
    return marks


def _through(model: ModelWrapper, node, context: dict, marks: dict, out: str) -> np.ndarray:
    shape = np.shape(context[out])
    op = node.op_type
    try:
        if op in WEIGHTED and node.input[0] in marks and all(name not in marks for name in node.input[1:]):
            return _run(model, node, context, marks, out, weighted=True) > 0
        if op in CARRIED:
            return _run(model, node, context, marks, out, weighted=False) > 0
        if op in ELEMENTWISE:
            result = np.zeros(shape, bool)
            for name in node.input:
                if name in marks:
                    result |= np.broadcast_to(marks[name], shape)
            return result
    except Exception:  # noqa: BLE001 - shapes that do not broadcast, an op that will not run on
        pass  # marks (onnxruntime's errors have types of their own): the whole frame, which is safe
    return _whole_frames(node, marks, shape)


def _run(model: ModelWrapper, node, context: dict, marks: dict, out: str, weighted: bool) -> np.ndarray:
    """`node` run on 0/1 marks in place of its streamed inputs (0 where unmarked) and, for a dot
    product, 0/1 in place of its weights."""
    local = {}
    for index, name in enumerate(node.input):
        if not name:
            continue
        value = context[name]
        if name in marks:
            local[name] = marks[name].astype(np.float32)
        elif op_streams(node, index) and model.get_initializer(name) is None:
            local[name] = np.zeros(np.shape(value), np.float32)
        elif weighted and index == 1:
            local[name] = (np.asarray(value) != 0).astype(np.float32)
        elif weighted and index == 2:
            local[name] = np.zeros(np.shape(value), np.float32)  # a bias marks nothing
        else:
            local[name] = value
    for name in node.output:
        local[name] = np.zeros(np.shape(context[name]), np.float32) if name in context else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        execute_node(node, local, model.graph, opset_version=_opset(model))
    return np.asarray(local[out])


def op_streams(node, index: int) -> bool:
    """Whether input `index` of `node` is a stream rather than a parameter: every input of a
    Concat, the first of any other op."""
    return node.op_type == "Concat" or index == 0


def _opset(model: ModelWrapper) -> int:
    return next((o.version for o in model.model.opset_import if o.domain in ("", "ai.onnx")), 13)


def _whole_frames(node, marks: dict, shape: tuple) -> np.ndarray:
    """Every element of each frame (the first axis) that any marked input element is in."""
    frames = shape[0] if shape else 1
    hit = np.zeros(frames, bool)
    for name in node.input:
        m = marks.get(name)
        if m is not None and m.ndim and m.shape[0] == frames:
            hit |= m.reshape(frames, -1).any(axis=1)
        elif m is not None and m.any():
            hit[:] = True
    return np.broadcast_to(hit.reshape((frames,) + (1,) * (len(shape) - 1)), shape).copy() if shape else hit

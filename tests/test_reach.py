"""`hwgen.reach`: which outputs can depend on marked elements, the graph run on marks."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import qonnx_make_model

from hwgen.execute import execute_context
from hwgen.reach import propagate


def small_net(w_conv: np.ndarray, w_fc: np.ndarray) -> ModelWrapper:
    """x (2, 2, 6, 6) -> Conv 3x3 pad 1 (3 channels) -> Relu -> MaxPool 2x2 -> Flatten -> MatMul -> TopK 1."""
    nodes = [
        helper.make_node("Conv", ["x", "wc"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "wf"], ["y"]),
        helper.make_node("TopK", ["y", "k"], ["v", "i"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "reach", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 6, 6])],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [2, 1])],
        [helper.make_tensor("wc", TensorProto.FLOAT, w_conv.shape, w_conv.ravel()),
         helper.make_tensor("wf", TensorProto.FLOAT, w_fc.shape, w_fc.ravel()),
         helper.make_tensor("k", TensorProto.INT64, [1], [1])])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    from qonnx.transformation.infer_shapes import InferShapes

    return model.transform(InferShapes())


def test_marks_follow_windows_weights_and_frames():
    """One input element of frame 0, channel 0, at (1, 1) is marked. The convolution marks the
    3x3 neighbourhood in the output channels whose weights on input channel 0 are not all zero
    (channel 1's are); the pool the 2x2 cells that hold it; the classifier the outputs whose weights
    on those cells are not zero; TopK the whole frame. Frame 1 stays unmarked throughout."""
    rng = np.random.default_rng(0)
    w_conv = rng.integers(1, 3, (3, 2, 3, 3)).astype(np.float32)
    w_conv[1, 0] = 0.0
    w_fc = np.zeros((27, 4), np.float32)
    w_fc[0, 0] = w_fc[9, 1] = w_fc[26, 2] = 1.0  # channel 0 cell (0, 0); channel 1 cell (0, 0); channel 2 cell (2, 2)
    model = small_net(w_conv, w_fc)
    x = rng.random((2, 2, 6, 6)).astype(np.float32)
    context = execute_context(model, x)
    mark = np.zeros(x.shape, bool)
    mark[0, 0, 1, 1] = True
    marks = propagate(model, context, {"x": mark})
    conv = np.zeros((2, 3, 6, 6), bool)
    conv[0, [0, 2], 0:3, 0:3] = True
    np.testing.assert_array_equal(marks["c"], conv)
    np.testing.assert_array_equal(marks["r"], conv)  # elementwise
    pool = np.zeros((2, 3, 3, 3), bool)
    pool[0, [0, 2], 0:2, 0:2] = True
    np.testing.assert_array_equal(marks["p"], pool)
    np.testing.assert_array_equal(marks["y"], np.array([[True, False, False, False], [False] * 4]))
    np.testing.assert_array_equal(marks["v"], np.array([[True], [False]]))

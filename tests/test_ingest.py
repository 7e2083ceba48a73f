"""Each ingest rewrite leaves the model's outputs bit-identical, applied alone and in pipeline order
on old and foreign exports; and each one does what its docstring says on a small graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from hwgen.errors import HwgenError
from hwgen.execute import execute
from hwgen.frontend.load import prepare_for_execution
from hwgen.transforms.ingest.cancel_inverse_transposes import CancelInverseTransposes
from hwgen.transforms.ingest.div_by_power_of_two_to_mul import DivByPowerOfTwoToMul, exact_reciprocal
from hwgen.transforms.ingest.fix_batch_size import FixDynamicBatch
from hwgen.transforms.ingest.multithreshold_channels_first import MultiThresholdChannelsFirst
from hwgen.transforms.ingest.remove_reshapes_around_elementwise import RemoveReshapesAroundElementwise
from hwgen.transforms.ingest.split_multithreshold_scale import SplitMultiThresholdScale
from hwgen.transforms.pipeline import INGEST, apply_all
from hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds import drop_unreached_zero
from hwgen.models.bnn_pynq import bnn_pynq_model
from hwgen.models.ecosystem import finn_onnx_tfc, qonnx_zoo_tfc, sign_activation_tfc
from hwgen.models.mlp import randomize

QONNX = "qonnx.custom_op.general"


def graph_of(nodes, inits: dict, shape_in, shape_out, opset: int = 13) -> ModelWrapper:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_in)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape_out)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(QONNX, 1)])
    proto.ir_version = 8
    return ModelWrapper(proto).transform(InferShapes())


def same_outputs(model: ModelWrapper, transform, x: np.ndarray) -> ModelWrapper:
    after = apply_all(model, [transform])
    assert np.array_equal(execute(after, x), execute(model, x), equal_nan=True), type(transform).__name__
    return after


def op_types(model: ModelWrapper) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.fixture(scope="module")
def exports():
    """A random BNN-PYNQ TFC in the three old forms of test_ecosystem_models, without shared data."""
    model = randomize(bnn_pynq_model("TFC_1W1A"), seed=2)
    return {"qonnx_zoo": qonnx_zoo_tfc(model), "sign": sign_activation_tfc(model),
            "finn_onnx": finn_onnx_tfc(model, (1, 2, 1))}


@pytest.mark.parametrize("kind", ["qonnx_zoo", "sign", "finn_onnx"])
def test_each_ingest_rewrite_preserves_outputs(exports, kind):
    graph = prepare_for_execution(ModelWrapper(exports[kind]))
    x = np.random.default_rng(0).random((32, 1, 28, 28)).astype(np.float32)
    expected = execute(graph, x)
    for transform in INGEST:
        graph = apply_all(graph, [transform])
        assert np.array_equal(execute(graph, x), expected), type(transform).__name__
    assert not {"Shape", "Gather", "Concat", "Unsqueeze", "Squeeze"} & set(op_types(graph))


def test_div_by_power_of_two_only():
    m = graph_of([helper.make_node("Div", ["x", "c"], ["t"]), helper.make_node("Div", ["t", "d"], ["y"])],
                 {"c": np.float32(0.25), "d": np.float32(255.0)}, [1, 8], [1, 8])
    x = np.array([[1e-38, 3e-45, -7.3, 1.0, 0.0, 2.0**100, 1 / 3, 255.0]], np.float32)
    after = same_outputs(m, DivByPowerOfTwoToMul(), x)
    assert op_types(after) == ["Mul", "Div"]
    assert exact_reciprocal(np.array([2.0, -0.5, 8.0])) is not None
    assert exact_reciprocal(np.array([2.0, 3.0])) is None and exact_reciprocal(np.array([0.0])) is None


def test_unsqueeze_batchnorm_squeeze():
    c = 6
    rng = np.random.default_rng(1)
    bn = {k: rng.random(c).astype(np.float32) + 0.5 for k in ("s", "b", "m", "v")}
    m = graph_of([
        helper.make_node("Unsqueeze", ["x", "axes"], ["u"]),
        helper.make_node("BatchNormalization", ["u", "s", "b", "m", "v"], ["n"]),
        helper.make_node("Mul", ["n", "k"], ["p"]),
        helper.make_node("Squeeze", ["p", "axes"], ["y"]),
    ], {**bn, "axes": np.array([2], np.int64), "k": rng.random((c, 1)).astype(np.float32)}, [1, c], [1, c])
    x = rng.standard_normal((16, c)).astype(np.float32)
    after = same_outputs(m, RemoveReshapesAroundElementwise(), x)
    assert op_types(after) == ["BatchNormalization", "Mul"]
    assert list(after.get_initializer(after.graph.node[1].input[1]).shape) == [1, c]


def test_multithreshold_channel_last_layout():
    thr = np.sort(np.random.default_rng(2).standard_normal((3, 4)), axis=1).astype(np.float32)
    m = graph_of([helper.make_node("MultiThreshold", ["x", "t"], ["y"], domain=QONNX, data_layout="NHWC",
                                   out_dtype="UINT3")], {"t": thr}, [1, 5, 5, 3], [1, 5, 5, 3])
    x = np.random.default_rng(3).standard_normal((4, 5, 5, 3)).astype(np.float32)
    after = same_outputs(m, MultiThresholdChannelsFirst(), x)
    assert op_types(after) == ["Transpose", "MultiThreshold", "Transpose"]
    # a transpose into NHWC before it meets the first of them and both go
    m2 = graph_of([helper.make_node("Transpose", ["x"], ["h"], perm=[0, 2, 3, 1]),
                   helper.make_node("MultiThreshold", ["h", "t"], ["y"], domain=QONNX, data_layout="NHWC",
                                    out_dtype="UINT3")], {"t": thr}, [1, 3, 5, 5], [1, 5, 5, 3])
    x2 = np.transpose(x, (0, 3, 1, 2)).copy()
    after2 = same_outputs(same_outputs(m2, MultiThresholdChannelsFirst(), x2), CancelInverseTransposes(), x2)
    assert op_types(after2) == ["MultiThreshold", "Transpose"]


@pytest.mark.parametrize("scale,bias,form", [
    (2.0, -1.0, ["MultiThreshold"]),                   # bipolar: integer levels already
    (0.5, -1.0, ["MultiThreshold", "Mul"]),            # levels 0.5 * (k - 2)
    (0.3, 0.1, ["MultiThreshold", "Mul", "Add"]),      # no integer form of the bias
])
def test_split_multithreshold_scale(scale, bias, form):
    steps = 1 if scale == 2.0 else 3
    thr = np.tile(np.linspace(-1, 1, steps), (4, 1)).astype(np.float32)
    m = graph_of([helper.make_node("MultiThreshold", ["x", "t"], ["y"], domain=QONNX, out_scale=scale,
                                   out_bias=bias, out_dtype="FLOAT32")], {"t": thr}, [1, 4], [1, 4])
    x = np.random.default_rng(4).standard_normal((64, 4)).astype(np.float32)
    after = same_outputs(m, SplitMultiThresholdScale(), x)
    assert op_types(after) == form
    assert after.get_tensor_datatype(after.graph.node[0].output[0]).is_integer()


def test_sign_zero_level_dropped_only_when_unreached():
    a = np.array([[3, 3], [0, 0]])
    assert drop_unreached_zero(a, 1.0, -1.0)[1:] == (2.0, -1.0)
    assert drop_unreached_zero(a, 1.0, -1.0)[0].shape == (2, 1)
    b = np.array([[3, 4], [0, 0]])  # channel 0 outputs 0 at acc = 3
    assert drop_unreached_zero(b, 1.0, -1.0)[0].shape == (2, 2)


def test_dynamic_axis_other_than_batch_is_named():
    m = graph_of([helper.make_node("Relu", ["x"], ["y"])], {}, ["batch", "width"], ["batch", "width"])
    with pytest.raises(HwgenError, match="tensor x.*axis 1 is dynamic"):
        apply_all(m, [FixDynamicBatch()])
    m = graph_of([helper.make_node("Relu", ["x"], ["y"])], {}, ["batch", 7], ["batch", 7])
    fixed = apply_all(m, [FixDynamicBatch()])
    assert fixed.get_tensor_shape("x") == [1, 7]


def test_ingest_rewrites_report_change_truthfully(exports):
    """Applied a second time, no ingest rewrite finds anything left to do."""
    graph = apply_all(prepare_for_execution(ModelWrapper(exports["finn_onnx"])), INGEST)
    for transform in INGEST:
        _, changed = transform.apply(ModelWrapper(onnx.load_from_string(graph.model.SerializeToString())))
        assert not changed, type(transform).__name__


def test_constant_nodes_fold_at_the_models_opset():
    """A weight computed from constants by ops newer than qonnx's default opset (GreaterOrEqual,
    Where: ABC-Net's binary bases at ImageNet widths, which the exporter leaves) becomes the
    constant it computes; the layer then reads an initializer."""
    from onnx import TensorProto, helper, numpy_helper
    from qonnx.core.modelwrapper import ModelWrapper

    from hwgen.transforms.ingest.fold_constant_nodes import FoldConstantNodes

    latent = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    nodes = [helper.make_node("GreaterOrEqual", ["latent", "zero"], ["ge"]),
             helper.make_node("Where", ["ge", "one", "minus_one"], ["w"]),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    inits = [numpy_helper.from_array(latent, "latent"), numpy_helper.from_array(np.float32(0), "zero"),
             numpy_helper.from_array(np.float32(1), "one"), numpy_helper.from_array(np.float32(-1), "minus_one")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    model = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    folded = model.transform(FoldConstantNodes())
    assert [n.op_type for n in folded.graph.node] == ["MatMul"]
    assert np.array_equal(folded.get_initializer(folded.graph.node[0].input[1]), np.where(latent >= 0, 1.0, -1.0))

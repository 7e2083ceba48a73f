"""Each streamlining rewrite, applied alone in pipeline order, leaves the graph's outputs bit-identical;
the end result is integer-only between the host parts; and the exactness cases that float algebra
gets wrong (negative BatchNorm scales, thresholds landing exactly on an accumulator value) hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qonnx.transformation.general import GiveUniqueNodeNames

from hwgen.errors import HwgenError
from hwgen.execute import execute
from hwgen.frontend import export_brevitas, prepare
from hwgen.transforms.partition import split_host_and_accelerator
from hwgen.transforms.pipeline import STREAMLINE, apply_all
from hwgen.models.mlp import BnnMlp, randomize


def exported(weight_bits: int, act_bits: int, seed: int, hidden=(24, 12), side=8):
    model = randomize(BnnMlp(in_features=side * side, hidden=hidden, weight_bits=weight_bits,
                             act_bits=act_bits), seed=seed)
    return model, prepare(export_brevitas(model, (1, 1, side, side))).transform(GiveUniqueNodeNames())


@pytest.mark.parametrize("bits", [(1, 1), (1, 2), (2, 2)])
def test_each_rewrite_preserves_outputs(bits):
    _, graph = exported(*bits, seed=3)
    x = np.random.default_rng(0).random((64, 1, 8, 8)).astype(np.float32)
    expected = execute(graph, x)
    for transform in STREAMLINE:
        graph = apply_all(graph, [transform])
        assert np.array_equal(execute(graph, x), expected), type(transform).__name__


def test_integer_core_between_host_parts():
    _, graph = exported(1, 1, seed=4)
    parts = split_host_and_accelerator(apply_all(graph, STREAMLINE))
    assert [n.op_type for n in parts.accel.graph.node] == [
        "MatMul", "MultiThreshold", "XnorPopcountMatMul", "MultiThreshold", "XnorPopcountMatMul"]
    assert parts.accel.get_tensor_datatype(parts.accel.graph.input[0].name).name == "UINT8"
    assert {n.op_type for n in parts.post.graph.node} <= {"Mul", "Add", "BatchNormalization"}


def test_negative_batchnorm_scale_is_exact():
    """Channels whose activation falls with the accumulator get their weights negated."""
    model, graph = exported(1, 1, seed=5)
    with torch.no_grad():
        bn = model.layers[1]
        bn.weight.mul_(-1)  # every channel of the first layer falling
    graph = prepare(export_brevitas(model, (1, 1, 8, 8))).transform(GiveUniqueNodeNames())
    x = np.random.default_rng(1).random((256, 1, 8, 8)).astype(np.float32)
    assert np.array_equal(execute(apply_all(graph, STREAMLINE), x), execute(graph, x))


def test_threshold_exactly_on_an_accumulator_value():
    """BatchNorm that maps an integer accumulator to exactly 0.0: sign(0) = +1 must hold. Inputs
    are made to land on the tie (checked), and the hidden layer's signs there compared too."""
    model, _ = exported(1, 1, seed=6, hidden=(8,))
    with torch.no_grad():
        bn = model.layers[1]
        bn.running_mean.copy_(torch.arange(8, dtype=torch.float32) * 2 - 8)  # integers
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.zero_()
    graph = prepare(export_brevitas(model, (1, 1, 8, 8))).transform(GiveUniqueNodeNames())
    # the layer sees pixel levels q (x = q / 256); channel c's BatchNorm output is 0 exactly where
    # sum_i w[c, i] q_i = 256 * mean[c]: channel 4 (mean 0) with one +1 and one -1 input equal
    w = np.where(model.layers[0].weight.detach().numpy() >= 0, 1, -1)
    mean = bn.running_mean.numpy()
    plus, minus = np.flatnonzero(w[4] > 0), np.flatnonzero(w[4] < 0)
    rng = np.random.default_rng(2)
    q = np.zeros((64, 64), np.int64)
    for k in range(64):
        q[k, plus[k % len(plus)]] = q[k, minus[k % len(minus)]] = rng.integers(1, 256)
    acc = q @ w.T
    on_tie = acc[:, 4] == 256 * mean[4]
    assert on_tie.all()
    x = np.concatenate([q / 256.0, rng.random((64, 64))]).astype(np.float32).reshape(-1, 1, 8, 8)
    streamlined = apply_all(graph, STREAMLINE)
    thresholds = [streamlined.get_initializer(n.input[1]) for n in streamlined.graph.node
                  if n.op_type == "MultiThreshold"]
    assert thresholds, "no thresholds were made"
    assert np.array_equal(execute(streamlined, x), execute(graph, x))
    with torch.no_grad():  # Brevitas too: BatchNorm output exactly 0 there, and its sign +1
        pixels = model.input_quant(torch.from_numpy(x[:64]).reshape(64, -1))
        normalized = model.layers[1](model.layers[0](pixels))
        assert torch.all(normalized[:, 4] == 0)
        assert torch.all(model.layers[2](normalized)[:, 4] > 0)


def test_float_leftover_between_layers_is_named():
    """A float op with no hardware form between two layers is an error naming it."""
    _, graph = exported(1, 1, seed=7)
    streamlined = apply_all(graph, STREAMLINE)
    # put a Relu between the first thresholds and the next layer
    from onnx import helper
    mt = next(n for n in streamlined.graph.node if n.op_type == "MultiThreshold")
    nxt = streamlined.find_consumers(mt.output[0])[0]
    relu_out = streamlined.make_new_valueinfo_name()
    streamlined.graph.node.insert(list(streamlined.graph.node).index(nxt),
                                  helper.make_node("Relu", [mt.output[0]], [relu_out], name="stray_relu"))
    nxt.input[0] = relu_out
    with pytest.raises(HwgenError, match="stray_relu"):
        split_host_and_accelerator(streamlined)

"""The binary-network building blocks of models/blocks.py (ReActNet, Bi-Real Net, BinaryDenseNet):
each exports to QONNX with both of torch's exporters, QONNX execution of the export equals Brevitas
bit for bit, the exported graph has the quantizers where the compiler expects them (every Add and
Concat between quantizer outputs, average pooling on a power-of-two 8-bit tensor), and the random
parameters are deterministic and keep every 8-bit quantizer inside its range."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from hwgen.execute import execute
from hwgen.frontend import export_brevitas
from hwgen.frontend.load import prepare_for_execution
from hwgen.models.blocks import (BiRealBlock, BiRealDownsampleBlock, BlockNet, DenseLayer, DenseTransition,
                           ReActNetBlock, is_int8_quant, randomize_block, saturation)

SIZE = 8
EXPORTERS = {"dynamo": {}, "torchscript": {"dynamo": False}}


@dataclass(frozen=True)
class Case:
    make: Callable[[bool], torch.nn.Module]
    in_channels: int
    out_shape: tuple[int, int, int, int]
    ops: dict[str, int]  # expected node counts of the export
    residual_adds: int  # Adds of two computed tensors (the others add a LearnableBias constant)


CASES = {
    "reactnet_normal": Case(
        lambda p: ReActNetBlock(8, 8, 1, pow2_scales=p), 8, (1, 8, 8, 8),
        {"Add": 8, "Concat": 0, "AveragePool": 0, "MaxPool": 0, "BipolarQuant": 4, "Quant": 7, "PRelu": 2}, 2),
    "reactnet_reduction": Case(
        lambda p: ReActNetBlock(8, 16, 2, pow2_scales=p), 8, (1, 16, 4, 4),
        {"Add": 9, "Concat": 1, "AveragePool": 1, "MaxPool": 0, "BipolarQuant": 5, "Quant": 9, "PRelu": 2}, 3),
    "bireal": Case(
        lambda p: BiRealBlock(8, pow2_scales=p), 8, (1, 8, 8, 8),
        {"Add": 1, "Concat": 0, "AveragePool": 0, "MaxPool": 0, "BipolarQuant": 2, "Quant": 3, "PRelu": 0}, 1),
    "bireal_downsample": Case(
        lambda p: BiRealDownsampleBlock(8, 16, pow2_scales=p), 8, (1, 16, 4, 4),
        {"Add": 1, "Concat": 0, "AveragePool": 1, "MaxPool": 0, "BipolarQuant": 2, "Quant": 6, "PRelu": 0}, 1),
    "dense_layer": Case(
        lambda p: DenseLayer(8, 8, pow2_scales=p), 8, (1, 16, 8, 8),
        {"Add": 0, "Concat": 1, "AveragePool": 0, "MaxPool": 0, "BipolarQuant": 2, "Quant": 2, "PRelu": 0}, 0),
    "dense_transition": Case(
        lambda p: DenseTransition(16, 8, pow2_scales=p), 16, (1, 8, 4, 4),
        {"Add": 0, "Concat": 0, "AveragePool": 0, "MaxPool": 1, "BipolarQuant": 0, "Quant": 4, "PRelu": 0}, 0),
}
PARAMS = [(name, pow2) for name in CASES for pow2 in (True, False)]
IDS = [f"{name}-{'pow2' if pow2 else 'float'}" for name, pow2 in PARAMS]


def make_net(name: str, pow2: bool, seed: int = 0) -> BlockNet:
    case = CASES[name]
    return randomize_block(BlockNet(case.make(pow2), case.in_channels, SIZE), seed=seed)


def random_images(channels: int, n: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, channels, SIZE, SIZE)).astype(np.float32)


@pytest.fixture(scope="module", params=PARAMS, ids=IDS)
def net(request) -> tuple[str, bool, BlockNet]:
    name, pow2 = request.param
    return name, pow2, make_net(name, pow2)


@pytest.fixture(scope="module", params=list(EXPORTERS))
def exported(request, net) -> tuple[str, bool, BlockNet, ModelWrapper]:
    """The export, ready for QONNX execution. TorchScript exports declare no shapes for the
    outputs of standard ops (Conv, BatchNormalization, Add, ...), which QONNX execution needs:
    they are inferred here, as the compiler's ingest does."""
    name, pow2, model = net
    graph = prepare_for_execution(export_brevitas(model, model.input_shape, **EXPORTERS[request.param]))
    return name, pow2, model, graph.transform(InferShapes(), cleanup=False)


def _scalar(model: ModelWrapper, tensor: str) -> float:
    value = model.get_initializer(tensor)
    assert value is not None and value.size == 1, f"{tensor} is not a constant scalar"
    return float(value.item())


def _is_pow2(x: float) -> bool:
    return x > 0 and x == 2.0 ** round(math.log2(x))


def _activation_quants(model: ModelWrapper) -> list:
    """Quant nodes on computed tensors (not on weight initializers)."""
    return [n for n in model.graph.node if n.op_type == "Quant" and model.get_initializer(n.input[0]) is None]


def test_export_matches_brevitas_bit_for_bit(exported):
    name, _, model, graph = exported
    x = random_images(CASES[name].in_channels)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = execute(graph, x)
    assert got.shape == (16,) + CASES[name].out_shape[1:] == expected.shape
    assert np.array_equal(got, expected), f"{(got != expected).sum()} values differ, max {np.abs(got - expected).max()}"


def test_one_input_one_output(exported):
    name, _, model, graph = exported
    assert len(graph.graph.input) == 1 and len(graph.graph.output) == 1
    assert tuple(graph.get_tensor_shape(graph.graph.input[0].name)) == model.input_shape
    assert tuple(graph.get_tensor_shape(graph.graph.output[0].name)) == model.output_shape == CASES[name].out_shape


def test_graph_structure(exported):
    name, _, _, graph = exported
    case = CASES[name]
    counts = Counter(n.op_type for n in graph.graph.node)
    assert {op: counts[op] for op in case.ops} == case.ops, counts
    residual = [n for n in graph.graph.node if n.op_type == "Add"
                and all(graph.get_initializer(i) is None for i in n.input)]
    assert len(residual) == case.residual_adds
    for add in residual:  # between two quantizer outputs (or a pooled one), into a quantizer
        producers = sorted(graph.find_producer(i).op_type for i in add.input)
        assert producers in (["Quant", "Quant"], ["AveragePool", "Quant"]), producers
        assert [c.op_type for c in graph.find_consumers(add.output[0])] == ["Quant"]
    for cat in (n for n in graph.graph.node if n.op_type == "Concat"):
        assert all(graph.find_producer(i).op_type == "Quant" for i in cat.input)
    for quant in _activation_quants(graph):  # 8-bit signed, per tensor, zero point 0
        attrs = {a.name: helper.get_attribute_value(a) for a in quant.attribute}
        assert attrs["signed"] == 1 and attrs["narrow"] == 0
        assert _scalar(graph, quant.input[3]) == 8.0 and _scalar(graph, quant.input[2]) == 0.0
        assert _scalar(graph, quant.input[1]) > 0  # one scale: per tensor


def test_scales(exported):
    """Power-of-two scales everywhere with `pow2_scales`, float scales (no power of two) otherwise,
    except that an average pool always reads a power-of-two 8-bit tensor and feeds an Add or a
    quantizer."""
    _, pow2, _, graph = exported
    quants = _activation_quants(graph)
    pooled = {n.input[0] for n in graph.graph.node if n.op_type == "AveragePool"}
    for quant in quants:
        scale = _scalar(graph, quant.input[1])
        if pow2 or quant.output[0] in pooled:
            assert _is_pow2(scale), scale
        else:
            assert not _is_pow2(scale), scale
    for pool in (n for n in graph.graph.node if n.op_type == "AveragePool"):
        assert graph.find_producer(pool.input[0]).op_type == "Quant"
        assert {c.op_type for c in graph.find_consumers(pool.output[0])} <= {"Add", "Quant"}


def test_int8_quantizers_in_range(net):
    """On random images, no 8-bit quantizer is mostly saturated or mostly zero."""
    name, _, model = net
    stats = saturation(model, torch.from_numpy(random_images(CASES[name].in_channels)))
    assert len(stats) == sum(is_int8_quant(m) for m in model.modules()) >= 2
    for quant, (saturated, zero) in stats.items():
        assert saturated < 0.1 and zero < 0.5, f"{quant}: {saturated:.1%} saturated, {zero:.1%} zero"


def test_parameters_deterministic_from_seed():
    a, b, c = (make_net("reactnet_reduction", True, seed).state_dict() for seed in (3, 3, 4))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_random_parameters_as_after_training():
    """Some falling BatchNorm channels and PReLU slopes, small biases, 8-bit conv weights normal."""
    model = make_net("reactnet_reduction", True)
    bn_weights = torch.cat([m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    slopes = torch.cat([m.weight for m in model.modules() if isinstance(m, torch.nn.PReLU)])
    assert 0 < (bn_weights < 0).float().mean() < 0.5
    assert 0 < (slopes < 0).float().mean() < 0.6 and slopes.min() >= -0.25 and slopes.max() <= 0.5
    biases = [m.bias.abs().max() / m.act_range for m in model.modules() if hasattr(m, "act_range")]
    assert len(biases) == 6 and max(biases) <= 0.1


def test_shapes_checked():
    with pytest.raises(ValueError):
        ReActNetBlock(8, 12, 2)
    with pytest.raises(ValueError):
        ReActNetBlock(8, 8, 3)
    with pytest.raises(ValueError):
        BlockNet(BiRealBlock(8), 4, SIZE)

"""Top-k in hardware: a model ending in TopK or ArgMax after a class-uniform increasing chain gets
a LabelSelect unit and outputs int64 indices bit-exact; a per-class BatchNorm keeps it on the host."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.simulate import run_input_model, simulate_build
from hwgen.models.mlp import BnnMlp, randomize


class TopIndices(nn.Module):
    def __init__(self, net: nn.Module, k: int, argmax: bool) -> None:
        super().__init__()
        self.net, self.k, self.argmax = net, k, argmax

    def forward(self, x):
        y = self.net(x)
        return y.argmax(1, keepdim=True) if self.argmax else torch.topk(y, self.k).indices


def uniform_tail(net: BnnMlp) -> BnnMlp:
    """Make the last BatchNorm the same positive affine map for every class."""
    with torch.no_grad():
        bn = net.layers[-1]
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(4.0)
        bn.weight.fill_(0.5)
        bn.bias.fill_(0.25)
    return net


@pytest.mark.parametrize("k,argmax", [(3, False), (1, True)])
def test_topk_runs_in_hardware(k, argmax, tmp_path, verilator_cache):
    net = uniform_tail(randomize(BnnMlp(in_features=64, hidden=(32,)), seed=11))
    path = tmp_path / "m.onnx"
    export_brevitas(TopIndices(net, k, argmax), (1, 1, 8, 8)).save(str(path))
    report = build(path, tmp_path / "b", BuildConfig(cache_dir=verilator_cache))
    assert "LabelSelect" in [layer["op"] for layer in report["layers"]]
    x = np.random.default_rng(3).random((40, 1, 8, 8)).astype(np.float32)
    y, _ = simulate_build(tmp_path / "b", x, cache_dir=verilator_cache)
    expected = run_input_model(tmp_path / "b", x)
    assert y.dtype == expected.dtype == np.int64
    assert np.array_equal(y, expected)


def test_per_class_batchnorm_keeps_topk_on_host(tmp_path, verilator_cache):
    net = randomize(BnnMlp(in_features=64, hidden=(32,)), seed=12)
    path = tmp_path / "m.onnx"
    export_brevitas(TopIndices(net, 1, False), (1, 1, 8, 8)).save(str(path))
    report = build(path, tmp_path / "b", BuildConfig(cache_dir=verilator_cache))
    assert "LabelSelect" not in [layer["op"] for layer in report["layers"]]
    x = np.random.default_rng(4).random((40, 1, 8, 8)).astype(np.float32)
    y, _ = simulate_build(tmp_path / "b", x, cache_dir=verilator_cache)
    assert np.array_equal(y, run_input_model(tmp_path / "b", x))

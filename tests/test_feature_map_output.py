"""A feature map (a 4-D tensor) is a valid accelerator output: it travels channel-last and the
host restores the model's NCHW layout, bit-exact with Brevitas and with the exported model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.simulate import check_checkpoints, run_input_model, simulate_build
from hwgen.models.convnet import BnnConvNet, ConvSpec, randomize_conv


class Features(nn.Module):
    """The convolutional part of a BnnConvNet: its output is the last (sign) feature map."""

    def __init__(self, net: BnnConvNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(self.net.input_quant(x))


def test_feature_map_output(tmp_path, verilator_cache):
    net = randomize_conv(BnnConvNet(1, (10, 10), [ConvSpec(6, padding=1), ConvSpec(5, stride=2)]), seed=4)
    model = Features(net).eval()
    path = tmp_path / "features.onnx"
    export_brevitas(model, (1, 1, 10, 10)).save(str(path))
    out = tmp_path / "build"
    build(path, out, BuildConfig(target_cycles=400, cache_dir=verilator_cache))
    x = np.random.default_rng(0).random((8, 1, 10, 10)).astype(np.float32)
    y, _ = simulate_build(out, x, stall_prob=0.3, cache_dir=verilator_cache)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert y.shape == expected.shape == (8, 5, 4, 4)
    assert np.array_equal(y, expected)
    assert np.array_equal(y, run_input_model(out, x))
    assert all(same for _, same in check_checkpoints(out, x))

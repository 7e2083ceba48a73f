"""Requantizations between units as arithmetic, end to end: the model's own ops (Brevitas,
exported to QONNX) on every 8-bit input value of every channel, against rtlsim of the build, with
and without stalls: RPReLU between two 8-bit quantizers (two affine pieces per channel, a falling
one where the slope is negative), a join's rescaling of a residual sum, and BatchNorm into an
8-bit quantizer behind an 8-bit convolution (one piece per channel, on the accumulator's range).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.models.blocks import RPReLU, int8_quant, randomize_block
from hwgen.simulate import run_input_model, simulate_build

CHANNELS = 8
SIDE = 16  # 256 pixels: one per 8-bit value


class RPReLUNet(nn.Module):
    """8-bit in, RPReLU, 8-bit out."""

    input_shape = (1, CHANNELS, SIDE, SIDE)

    def __init__(self, pow2: bool) -> None:
        super().__init__()
        s_in, s_out = (2.0 ** -4, 2.0 ** -4) if pow2 else (0.043, 0.051)
        self.inp = int8_quant(s_in, pow2)
        self.rprelu = RPReLU(CHANNELS, act_range=128 * s_in)
        self.out = int8_quant(s_out, pow2)
        self.scale = s_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rprelu(self.inp(x)))


class JoinNet(nn.Module):
    """The input and a coarser 8-bit quantization of it added, then an 8-bit quantizer: a join whose sum is
    rescaled (by a half with power-of-two scales: ties that the model rounds to even)."""

    input_shape = (1, CHANNELS, SIDE, SIDE)

    def __init__(self, pow2: bool) -> None:
        super().__init__()
        self.scale = 2.0 ** -4 if pow2 else 0.043
        self.inp = int8_quant(self.scale, pow2)
        self.other = int8_quant(2.0 ** -3 if pow2 else 0.061, pow2)
        self.out = int8_quant(2.0 ** -3 if pow2 else 0.087, pow2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.inp(x)
        return self.out(a + self.other(a))


def every_value_frames(scale: float) -> np.ndarray:
    """Two frames whose pixels hold every 8-bit level times `scale`, in every channel (the second
    in another order, with channels shifted)."""
    levels = np.arange(-128, 128, dtype=np.float32) * np.float32(scale)
    first = np.broadcast_to(levels.reshape(1, SIDE, SIDE), (CHANNELS, SIDE, SIDE))
    second = np.stack([np.roll(levels[::-1], 17 * c).reshape(SIDE, SIDE) for c in range(CHANNELS)])
    return np.stack([first, second]).astype(np.float32)


@pytest.mark.parametrize("make", [lambda: RPReLUNet(False), lambda: RPReLUNet(True), lambda: JoinNet(True),
                                  lambda: JoinNet(False)], ids=["rprelu-float", "rprelu-pow2", "join-pow2",
                                                                "join-float"])
def test_every_input_value_through_rtlsim(make, tmp_path, verilator_cache):
    net = randomize_block(make(), seed=3)
    path = tmp_path / "net.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=512, cache_dir=verilator_cache))
    assert report["requantization"]["arithmetic"] >= 1 and report["requantization"]["table"] == 0
    assert "Requantize" in {layer["op"] for layer in report["layers"]}
    x = every_value_frames(net.scale)
    expected = run_input_model(out, x)  # the model's own ops, QONNX execution
    with torch.no_grad():
        assert np.array_equal(expected, net(torch.from_numpy(x)).numpy())  # and Brevitas agrees
    for stall in (0.0, 0.3):
        y, _ = simulate_build(out, x, stall_prob=stall, seed=1, cache_dir=verilator_cache)
        assert np.array_equal(y, expected), f"stall {stall}"
    assert np.unique(expected).size > 40  # the function is exercised, not a constant


def test_batchnorm_after_an_8bit_convolution_is_one_line_on_its_accumulator(tmp_path, verilator_cache):
    """An 8-bit 1x1 convolution, BatchNorm and an 8-bit quantizer: the 255 thresholds per channel
    on the accumulator's reachable range become one multiply-add per channel."""
    from hwgen.models.blocks import Int8ConvBN

    class Net(nn.Module):
        input_shape = (1, CHANNELS, 4, 4)

        def __init__(self) -> None:
            super().__init__()
            self.conv = Int8ConvBN(CHANNELS, 16, 2.0 ** -4, 2.0 ** -3, pow2=True)

        def forward(self, x):
            return self.conv(x)

    net = randomize_block(Net(), seed=5)
    path = tmp_path / "net.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=64, cache_dir=verilator_cache))
    assert report["requantization"] == {"arithmetic": 1, "thresholds": 0, "table": 0, "kept": {}}
    x = np.random.default_rng(0).uniform(-8, 8, (16, *Net.input_shape[1:])).astype(np.float32)
    y, _ = simulate_build(out, x, stall_prob=0.3, seed=2, cache_dir=verilator_cache)
    assert np.array_equal(y, run_input_model(out, x))

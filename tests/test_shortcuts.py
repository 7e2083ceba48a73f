"""Shortcut graphs: the patterns FINN's users report as failures (a residual whose branch ends in a
float scalar Mul, a concat of branches with different scales, a PReLU), a join hwgen must refuse
with a clear message, and a ladder of random shortcut networks (forks, adds, concats, pools).
Each is checked at every step of the lowering and in rtlsim, with stalls, against Brevitas."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.errors import HwgenError
from hwgen.frontend import export_brevitas
from hwgen.simulate import check_checkpoints, run_input_model, simulate_build
from hwgen.models.blocks import BinaryConvBN, Block, BlockNet, int8_quant, randomize_block, scales, sign_quant
from hwgen.models.shortcuts import ConcatOfScales, PReLUBlock, ScaledBranchResidual, random_shortcut_net


def build_and_check(net: nn.Module, tmp_path, cache, frames: int = 16) -> None:
    path = tmp_path / "net.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=2048, cache_dir=cache))
    x = np.random.default_rng(4).random((frames, *net.input_shape[1:])).astype(np.float32)
    steps = check_checkpoints(out, x)
    assert all(same for _, same in steps), steps
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=7, cache_dir=cache)
        assert np.array_equal(y, want) and np.array_equal(y, run_input_model(out, x)), f"stall {stall}"
        if stall == 0.0:
            slowest = report["totals"]["max_est_cycles"]
            assert stats["cycles_per_frame"] == slowest


@pytest.mark.parametrize("pattern", [ScaledBranchResidual, ConcatOfScales, PReLUBlock],
                         ids=["residual_with_float_mul", "concat_of_scales", "prelu"])
def test_finn_failure_patterns(pattern, tmp_path, verilator_cache):
    net = randomize_block(BlockNet(pattern(8), 8, 8), seed=1)
    with torch.no_grad():
        if isinstance(net.block, PReLUBlock):
            assert (net.block.prelu.weight < 0).any()
    build_and_check(net, tmp_path, verilator_cache)


class UnquantizedBranch(Block):
    """A residual whose branch output is a BatchNorm, not quantized: per-channel float scales."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.in_channels = self.out_channels = channels
        self.sign = sign_quant()
        self.branch = BinaryConvBN(channels, channels, 3, 1, scales(True).norm, True)
        self.quant = int8_quant(scales(True).stream, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.branch
        return self.quant(b.bn(b.conv(self.sign(x))) + x)


@pytest.mark.parametrize("channels, size, seed", [(4, 6, 2), (16, 8, 3)])
def test_a_batchnorm_output_joined_to_the_shortcut(channels, size, seed, tmp_path, verilator_cache):
    """The join every paper's code writes: the binary convolution's BatchNorm output (a
    per-channel affine of its accumulator) added to the 8-bit shortcut, then quantized. Each
    channel gets its own integer pair (z = alpha[c] * acc + beta[c] * x), and the block is
    bit-exact with Brevitas at every step and in rtlsim, with stalls."""
    net = randomize_block(BlockNet(UnquantizedBranch(channels), channels, size), seed=seed)
    build_and_check(net, tmp_path, verilator_cache)
    graph = onnx.load(str(tmp_path / "build" / "graphs" / "02_streamline.onnx"))
    [add] = [n for n in graph.graph.node if n.op_type == "ScaledAdd"]
    alphas = next(a.ints for a in add.attribute if a.name == "alphas")
    assert len(alphas) == channels and len(set(alphas)) > 1


LADDER = [pytest.param(seed, marks=() if seed < 3 else pytest.mark.slow) for seed in range(8)]


@pytest.mark.parametrize("seed", LADDER)
def test_random_shortcut_ladder(seed, tmp_path, verilator_cache):
    net = random_shortcut_net(seed)
    build_and_check(net, tmp_path, verilator_cache)


class PooledClassifier(Block):
    """Bi-Real's and ReActNet's head: a feature map averaged over the whole image (ReduceMean in
    the dynamo export), quantized, flattened and classified (binary weights here: with float-scaled
    8-bit weights the model's float logits round inside its MatMul, see the fidelity notes)."""

    def __init__(self, channels: int, classes: int = 10) -> None:
        super().__init__()
        from brevitas.nn import QuantLinear
        from brevitas_examples.bnn_pynq.models.common import CommonWeightQuant

        self.in_channels, self.out_channels = channels, classes
        self.sign = sign_quant()
        self.conv = BinaryConvBN(channels, channels, 3, 1, scales(True).norm, True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.quant = int8_quant(scales(True).stream, True)
        self.fc = QuantLinear(channels, classes, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.quant(self.pool(self.conv(self.sign(x)))).flatten(1))


def test_global_average_pooling_before_the_classifier(tmp_path, verilator_cache):
    net = randomize_block(BlockNet(PooledClassifier(8), 8, 8), seed=0)
    net.output_shape = (1, 10)
    build_and_check(net, tmp_path, verilator_cache)
    import json
    ops = [layer["op"] for layer in json.loads((tmp_path / "build" / "report.json").read_text())["layers"]]
    assert "SumPool" in ops


def test_wide_join_never_puts_a_pair_under_a_level_on_its_threshold():
    """The wide join's coefficients must order every pair: one under a level whose z equals the
    level's threshold would compare as reaching it (a trained ReActNet-A port lost a level on 57
    outputs of 16 frames that way, none of them a float tie). Level 1 starts at w = 5 for u = 0
    and at w = 3 for u = 1: z = u + w puts (1, 3) and (0, 4) on the same z; z = 3u + 2w orders all."""
    from hwgen.transforms.streamline.fold_join_into_scaled_add import _wide_coefficients

    u, least = np.array([0, 1]), np.array([[5], [3]])
    assert _wide_coefficients(u, least, 0, 10, 1.0, tolerant=False) is None
    alpha, beta, t = _wide_coefficients(u, least, 0, 10, 1.5, tolerant=False)
    for value, first in zip(u, least[:, 0]):
        for w in range(11):
            assert (alpha * value + beta * w >= t[0]) == (w >= first), (value, w)

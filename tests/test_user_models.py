"""Pieces of the papers' official code as users port them to Brevitas, with Brevitas' default
quantizers (float scales calibrated on data): each builds, and `verify` passes with exact integers,
with and without stalls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.simulate import verify_build


class LearnableBias(torch.nn.Module):
    """The official code's per-channel shift: x + b (before a sign, around a PReLU)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


def binary_conv3x3(channels: int, weight_quant=SignedBinaryWeightPerTensorConst) -> QuantConv2d:
    """A 3x3 binary convolution, padded, without bias (Brevitas' default binary weights)."""
    return QuantConv2d(channels, channels, 3, padding=1, bias=False, weight_quant=weight_quant, weight_bit_width=1)


class ResNetStem(torch.nn.Module):
    """ResNet's stem as Bi-Real's code writes it: a 7x7 stride-2 convolution, BatchNorm, then a 3x3
    stride-2 max-pool with padding 1; Brevitas' default 8-bit quantizers, an 8-bit classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.inq = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv = QuantConv2d(3, 8, 7, stride=2, padding=3, bias=False, weight_bit_width=8)
        self.bn = torch.nn.BatchNorm2d(8)
        self.q = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.pool = torch.nn.MaxPool2d(3, 2, 1)
        self.fc = QuantLinear(8 * 8 * 8, 10, bias=False, weight_bit_width=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.q(self.bn(self.conv(self.inq(x))))).flatten(1))


class HardBinaryBranch(torch.nn.Module):
    """ReActNet's binary branch as its code writes it: LearnableBias, sign, a binary 3x3
    convolution times its per-channel scaling factor (the mean |w| of HardBinaryConv) before the
    BatchNorm, then LearnableBias, PReLU with a slope per channel, LearnableBias; Brevitas'
    default binary weights (`SignedBinaryWeightPerTensorConst`) and 8-bit quantizers."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.inq = QuantIdentity(bit_width=8, return_quant_tensor=False)
        self.move0 = LearnableBias(channels)
        self.sign = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.conv = binary_conv3x3(channels)
        self.scale = torch.nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bn = torch.nn.BatchNorm2d(channels)
        self.move1, self.prelu, self.move2 = LearnableBias(channels), torch.nn.PReLU(channels), LearnableBias(channels)
        self.q = QuantIdentity(bit_width=8, return_quant_tensor=False)
        self.fc = QuantLinear(channels * 8 * 8, 10, bias=False, weight_bit_width=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(self.sign(self.move0(self.inq(x)))) * self.scale)
        return self.fc(self.q(self.move2(self.prelu(self.move1(y)))).flatten(1))


class PooledHead(torch.nn.Module):
    """The papers' head as their code writes it: a binary convolution's BatchNorm output quantized by
    Brevitas' default 8-bit quantizer (a float scale), averaged over the image, quantized again,
    and classified."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.inq = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.conv = binary_conv3x3(channels)
        self.bn = torch.nn.BatchNorm2d(channels)
        self.q = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.q2 = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.fc = QuantLinear(channels, 10, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.q2(self.pool(self.q(self.bn(self.conv(self.inq(x)))))).flatten(1))


class ConcatIntoPool(torch.nn.Module):
    """A dense block's end as BinaryDenseNet's code writes it: the block input and a new binary
    convolution's output, each quantized with its own scale, concatenated and averaged over the
    image straight away, then quantized and classified."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.inq = QuantIdentity(bit_width=8, return_quant_tensor=False)
        self.sign = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.conv = binary_conv3x3(channels)
        self.bn = torch.nn.BatchNorm2d(channels)
        self.q = QuantIdentity(bit_width=8, return_quant_tensor=False)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.q2 = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.fc = QuantLinear(2 * channels, 10, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inq(x)
        new = self.q(self.bn(self.conv(self.sign(x))))
        return self.fc(self.q2(self.pool(torch.cat([x, new], dim=1))).flatten(1))


class ABCConv(torch.nn.Module):
    """ABC-Net's layer as its paper writes it: sum over m, n of alpha_m beta_n conv(B_m, A_n), one
    binary convolution per weight base B_m (its own weights) and activation base A_n =
    sign(x + shift_n), the coefficients binary fractions."""

    def __init__(self, channels: int, m: int = 3, n: int = 3, weight_quant=SignedBinaryWeightPerTensorConst) -> None:
        super().__init__()
        self.shifts = torch.nn.Parameter(torch.linspace(-0.5, 0.5, n))
        self.signs = torch.nn.ModuleList(
            QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True) for _ in range(n))
        self.convs = torch.nn.ModuleList(binary_conv3x3(channels, weight_quant) for _ in range(m))
        self.register_buffer("alpha", torch.tensor([0.5, 0.25, 0.125, 0.0625, 0.03125][:m]))
        self.register_buffer("beta", torch.tensor([1.0, 0.5, 0.25, 0.125, 0.0625][:n]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts = [sign(x + shift) for sign, shift in zip(self.signs, self.shifts)]
        return sum(self.alpha[i] * self.beta[j] * conv(a) for i, conv in enumerate(self.convs)
                   for j, a in enumerate(acts))


class ABCBlock(torch.nn.Module):
    """An ABC-Net (3, 3) layer with its BatchNorm, an 8-bit quantizer and a classifier."""

    def __init__(self, channels: int = 8, weight_quant=SignedBinaryWeightPerTensorConst, act_quant=None) -> None:
        super().__init__()
        acts = {"bit_width": 8} if act_quant is None else {"act_quant": act_quant}
        self.inq = QuantIdentity(return_quant_tensor=False, **acts)
        self.abc = ABCConv(channels, weight_quant=weight_quant)
        self.bn = torch.nn.BatchNorm2d(channels)
        self.q = QuantIdentity(return_quant_tensor=True, **acts)
        self.fc = QuantLinear(channels * 6 * 6, 10, bias=False, weight_quant=weight_quant, weight_bit_width=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.q(self.bn(self.abc(self.inq(x)))).flatten(1))


def trained_looking(module: torch.nn.Module, shape: tuple[int, ...], seed: int) -> torch.nn.Module:
    """`module` with spread-out shifts, slopes, scaling factors and BatchNorm statistics, its
    quantizers' scales calibrated on a few batches of data (train mode), then in eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, LearnableBias):
                sub.bias.uniform_(-0.3, 0.3)
            elif isinstance(sub, torch.nn.PReLU):
                sub.weight.uniform_(-0.5, 0.5)
            elif isinstance(sub, torch.nn.BatchNorm2d):
                sub.running_mean.uniform_(-2, 2)
                sub.running_var.uniform_(1, 20)
                sub.weight.uniform_(-1, 1)
        if isinstance(module, HardBinaryBranch):
            module.scale.uniform_(0.1, 0.6)
    module.train()
    for _ in range(5):
        module(torch.randn(16, *shape[1:]))
    return module.eval()


@pytest.mark.parametrize("make, shape", [(ResNetStem, (1, 3, 32, 32)), (HardBinaryBranch, (1, 16, 8, 8)),
                                         (PooledHead, (1, 16, 8, 8)), (ConcatIntoPool, (1, 8, 8, 8)),
                                         (ABCBlock, (1, 8, 6, 6))],
                         ids=["resnet-stem", "hard-binary-branch", "float-scale-pooled-head", "concat-into-pool",
                              "abc-net-3x3-paper-form"])
def test_official_code_pieces_with_default_quantizers(make, shape, tmp_path: Path, verilator_cache):
    module = trained_looking(make(), shape, seed=0)
    export_brevitas(module, shape).save(str(tmp_path / "m.onnx"))
    out = tmp_path / "b"
    build(tmp_path / "m.onnx", out, BuildConfig(cache_dir=verilator_cache))
    x = np.random.default_rng(5).standard_normal((32, *shape[1:])).astype(np.float32)
    for stall in (0.0, 0.3):
        result = verify_build(out, x, stall_prob=stall, cache_dir=verilator_cache)
        assert result.passed and result.integer_mismatches == 0 and result.tie_frames <= 0.01 * len(x), \
            result.summary()


def _rtlsim_is_brevitas(module: torch.nn.Module, out: Path, cache: Path) -> None:
    """rtlsim of build `out` equals `module` bit for bit on 16 frames, with and without stalls."""
    from hwgen.simulate import simulate_build

    x = np.random.default_rng(5).standard_normal((16, 8, 6, 6)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    for stall in (0.0, 0.3):
        y, _ = simulate_build(out, x, stall_prob=stall, seed=3, cache_dir=cache)
        assert np.array_equal(y, want), stall


class UnquantizedSumOfBases(torch.nn.Module):
    """A weighted sum of binary convolutions left in floats at the network's end, its coefficients
    in no small integer ratio (learned floats, not ABC-Net's binary fractions): the integer layers
    end in one tensor per base that float multiplies and adds combine."""

    def __init__(self, bases: int = 3) -> None:
        super().__init__()
        self.inq = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.convs = torch.nn.ModuleList(binary_conv3x3(4) for _ in range(bases))
        self.alphas = torch.nn.Parameter(torch.tensor([0.5731, 0.2917, 0.1403])[:bases])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.inq(x)
        return sum(a * conv(q) for a, conv in zip(self.alphas, self.convs))


def test_integer_layers_ending_in_several_tensors_are_one_line(tmp_path: Path):
    from hwgen.errors import HwgenError

    export_brevitas(UnquantizedSumOfBases().eval(), (1, 4, 6, 6)).save(str(tmp_path / "m.onnx"))
    with pytest.raises(HwgenError, match=r"^node \S+: the integer layers end in 3 tensors \(.*\) that float ops after "
                                         r"them combine, where an accelerator has one output stream: put a quantizer "
                                         r"after the ops that combine them, so that the join is integer$"):
        build(tmp_path / "m.onnx", tmp_path / "b", BuildConfig())
    assert not (tmp_path / "b").exists()


def test_abc_net_as_the_paper_writes_it_is_bit_exact(tmp_path: Path, verilator_cache):
    """ABC-Net (3, 3) the paper's way with power-of-two scales (weights and 8-bit quantizers): the nine binary convolutions
    become nine XNOR-popcount MVUs, their weighted sum eight AddStreams (integer coefficients; the
    last one's negated in the channels whose BatchNorm falls), and rtlsim equals Brevitas bit for
    bit, with and without stalls."""
    import json

    from brevitas.quant import Int8ActPerTensorFixedPoint
    from brevitas_examples.bnn_pynq.models.common import CommonWeightQuant

    module = trained_looking(ABCBlock(weight_quant=CommonWeightQuant, act_quant=Int8ActPerTensorFixedPoint),
                             (1, 8, 6, 6), seed=1)
    assert (module.bn.weight < 0).any()  # falling channels after the sum: their coefficients negated
    export_brevitas(module, (1, 8, 6, 6)).save(str(tmp_path / "m.onnx"))
    out = tmp_path / "b"
    build(tmp_path / "m.onnx", out, BuildConfig(cache_dir=verilator_cache))
    ops = [layer["op"] for layer in json.loads((out / "report.json").read_text())["layers"]]
    assert ops.count("MVU") == 10 and ops.count("AddStreams") == 8  # nine bases and the classifier
    _rtlsim_is_brevitas(module, out, verilator_cache)


class ABCResNet(torch.nn.Module):
    """A small ABC-Net ResNet the paper's way: per block an ABC (3, 3) layer, its BatchNorm, added to
    the block's input, then an 8-bit quantizer; a pooled head. Power-of-two scales."""

    def __init__(self, channels: int = 8, blocks: int = 2) -> None:
        from brevitas.quant import Int8ActPerTensorFixedPoint
        from brevitas_examples.bnn_pynq.models.common import CommonWeightQuant

        super().__init__()

        def int8(quant_tensor: bool = False) -> QuantIdentity:
            return QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=quant_tensor)

        self.inq = int8()
        self.abcs = torch.nn.ModuleList(ABCConv(channels, weight_quant=CommonWeightQuant) for _ in range(blocks))
        self.bns = torch.nn.ModuleList(torch.nn.BatchNorm2d(channels) for _ in range(blocks))
        self.qs = torch.nn.ModuleList(int8() for _ in range(blocks))
        self.pool, self.pool_q = torch.nn.AdaptiveAvgPool2d(1), int8(quant_tensor=True)
        self.fc = QuantLinear(channels, 10, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inq(x)
        for abc, bn, q in zip(self.abcs, self.bns, self.qs):
            x = q(bn(abc(x)) + x)
        return self.fc(self.pool_q(self.pool(x)).flatten(1))


def test_a_small_abc_resnet_as_the_paper_writes_it_is_bit_exact(tmp_path: Path, verilator_cache):
    """The residual join of ABC-Net's weighted sum (nine bases: a sum of 10^4 values) and the 8-bit
    shortcut is too wide to tabulate; it is found by bisection per level on the model's own float32
    ops, and rtlsim equals Brevitas bit for bit, with and without stalls."""

    module = trained_looking(ABCResNet(), (1, 8, 6, 6), seed=1)
    export_brevitas(module, (1, 8, 6, 6)).save(str(tmp_path / "m.onnx"))
    out = tmp_path / "b"
    build(tmp_path / "m.onnx", out, BuildConfig(cache_dir=verilator_cache))
    _rtlsim_is_brevitas(module, out, verilator_cache)

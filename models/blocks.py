"""Brevitas building blocks of four binary-network families, laid out so that hwgen can compile them:
ReActNet-A, Bi-Real Net and BinaryDenseNet blocks, a wrapper that makes any block a one-input,
one-output network on images, and deterministic random parameters "as after training".

Every tensor that travels between hardware units is a quantizer output, so the compiler can give
each stream an integer type:

- block inputs and outputs, the branch output entering a residual Add or a Concat (after its
  BatchNorm), and every Add's result are 8-bit signed activations (`QuantIdentity`, one constant
  per-tensor scale, `return_quant_tensor=False` so that the Adds are plain ONNX `Add`s between two
  `Quant` outputs);
- the binary activations (sign, RSign) are `BipolarQuant` (sign(0) = +1), the binary convolutions'
  weights {-1, +1}; the "full-precision" 1x1 convolutions have 8-bit weights and 8-bit inputs;
- average pooling reads an 8-bit tensor with a power-of-two scale (its float arithmetic is then
  exact) and feeds an Add or an 8-bit quantizer.

Scales are constants fixed at construction (`ScalingImplType.CONST`), so an untrained, randomized
model is deterministic and its export needs no calibration. `pow2_scales=True` gives power-of-two
scales (the accelerator requantizes by shifts), `pow2_scales=False` float scales whose ratios are
not powers of two (requantization needs a multiplier, or thresholds). The ranges suit
`randomize_block`'s parameters: BatchNorm outputs spread about one (`Scales.norm`: range +-4, or
+-4.75 with float scales), sums of two such tensors and what follows them about twice that
(`Scales.stream`: +-8, or +-8.23).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from brevitas.core.scaling import ScalingImplType
from brevitas.nn import QuantConv2d, QuantIdentity
from brevitas.quant import (
    Int8ActPerTensorFixedPoint, Int8ActPerTensorFloat, Int8WeightPerTensorFixedPoint, Int8WeightPerTensorFloat,
)
from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
from torch import nn

#: Fraction of an activation range that a LearnableBias moves its input by (randomize_block).
BIAS_FRACTION = 0.1
#: PReLU slopes are drawn from this interval: about a third of the channels fall.
PRELU_SLOPES = (-0.25, 0.5)


# --------------------------------------------------------------------------- quantizers and scales

class Pow2Int8ActQuant(Int8ActPerTensorFixedPoint):
    """Signed 8-bit activations, per tensor, with a constant power-of-two scale (`scaling_init` is
    the range: scale = scaling_init / 128)."""

    scaling_impl_type = ScalingImplType.CONST


class FloatInt8ActQuant(Int8ActPerTensorFloat):
    """Signed 8-bit activations, per tensor, with a constant float scale (scale = scaling_init / 128)."""

    scaling_impl_type = ScalingImplType.CONST


@dataclass(frozen=True)
class Scales:
    """The constant scales of a block's 8-bit quantizers, by role.

    `input`: `BlockNet`'s image quantizer (pixels in [0, 1)). `norm`: a BatchNorm's output (the
    branch entering an Add or Concat, a transition's output). `stream`: a residual Add's result,
    what RPReLU makes of it, the input of an 8-bit 1x1 convolution.
    """

    input: float
    norm: float
    stream: float


POW2_SCALES = Scales(input=2.0 ** -7, norm=2.0 ** -5, stream=2.0 ** -4)
FLOAT_SCALES = Scales(input=1.0 / 127, norm=0.0371, stream=0.0643)


def scales(pow2: bool) -> Scales:
    return POW2_SCALES if pow2 else FLOAT_SCALES


def int8_quant(scale: float, pow2: bool) -> QuantIdentity:
    """An 8-bit signed per-tensor activation quantizer with the constant `scale` (levels -128..127)."""
    if pow2 and scale != 2.0 ** round(math.log2(scale)):
        raise ValueError(f"power-of-two quantizer asked for scale {scale}")
    act_quant = Pow2Int8ActQuant if pow2 else FloatInt8ActQuant
    return QuantIdentity(act_quant=act_quant, scaling_init=scale * 128, return_quant_tensor=False)


def int8_weights(pow2: bool) -> type:
    """8-bit weight quantizer: a power-of-two scale with power-of-two activations, so that the
    model's float convolution is exact (every product and partial sum a float32 value exactly)
    and the accelerator's integer one equals it bit for bit; a float scale otherwise."""
    return Int8WeightPerTensorFixedPoint if pow2 else Int8WeightPerTensorFloat


def sign_quant() -> QuantIdentity:
    """The binary activation of BNN-PYNQ: exported as QONNX `BipolarQuant`, sign(0) = +1."""
    return QuantIdentity(act_quant=CommonActQuant, bit_width=1, return_quant_tensor=False)


def is_int8_quant(m: nn.Module) -> bool:
    return isinstance(m, QuantIdentity) and int(m.act_quant.bit_width()) == 8


# --------------------------------------------------------------------------- small modules

class LearnableBias(nn.Module):
    """ReActNet's "move": x + b with one learnable value per channel, b of shape (1, C, 1, 1).

    `act_range` is the magnitude of the activations it shifts (the range of the quantizer in front
    of it); `randomize_block` draws biases within `BIAS_FRACTION` of it.
    """

    def __init__(self, channels: int, act_range: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.act_range = act_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class RSign(nn.Module):
    """ReActNet's RSign: a learnable per-channel threshold, sign(x + b), as LearnableBias followed
    by the binary quantizer (the compiler folds the bias into the sign's threshold)."""

    def __init__(self, channels: int, act_range: float) -> None:
        super().__init__()
        self.move = LearnableBias(channels, act_range)
        self.sign = sign_quant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sign(self.move(x))


class RPReLU(nn.Module):
    """ReActNet's RPReLU: PReLU(x + b1) + b2 with per-channel b1, slope and b2. Its output is not a
    quantizer output: every block puts an 8-bit quantizer after it."""

    def __init__(self, channels: int, act_range: float) -> None:
        super().__init__()
        self.move_in = LearnableBias(channels, act_range)
        self.prelu = nn.PReLU(channels)
        self.move_out = LearnableBias(channels, act_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.move_out(self.prelu(self.move_in(x)))


class BinaryConvBN(nn.Module):
    """Binary-weight convolution (3x3 with padding 1, or 1x1) -> BatchNorm -> 8-bit quantizer.

    Its input is a sign output (+-1; zero padding contributes 0), its output an 8-bit tensor of
    scale `scale`, ready for a residual Add or a Concat."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, scale: float,
                 pow2: bool) -> None:
        super().__init__()
        if kernel not in (1, 3):
            raise ValueError(f"binary convolutions are 3x3 or 1x1, not {kernel}x{kernel}")
        self.conv = QuantConv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2,
                                bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.quant = int8_quant(scale, pow2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.bn(self.conv(x)))


class Int8ConvBN(nn.Module):
    """8-bit quantizer -> 1x1 convolution with 8-bit weights -> BatchNorm -> 8-bit quantizer: the
    "full-precision" downsampling convolution of Bi-Real Net and BinaryDenseNet, integer in and
    out."""

    def __init__(self, in_channels: int, out_channels: int, in_scale: float, out_scale: float,
                 pow2: bool) -> None:
        super().__init__()
        self.quant_in = int8_quant(in_scale, pow2)
        self.conv = QuantConv2d(in_channels, out_channels, 1, bias=False,
                                weight_quant=int8_weights(pow2), weight_bit_width=8)
        self.bn = nn.BatchNorm2d(out_channels)
        self.quant = int8_quant(out_scale, pow2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.bn(self.conv(self.quant_in(x))))


class Block(nn.Module):
    """What `BlockNet` needs to know of a block. A block does not quantize its input: it expects
    an 8-bit quantizer output (the previous block's output quantizer, or `BlockNet`'s), of power-of-
    two scale where `pools_input` (average pooling of the input, R7)."""

    in_channels: int
    out_channels: int
    stride: int = 1
    pow2_scales: bool = True
    pools_input: bool = False


# --------------------------------------------------------------------------- ReActNet

class ReActNetBlock(Block):
    """A ReActNet-A block (Liu et al., "ReActNet: Towards Precise Binary Neural Network with
    Generalized Activation Functions", ECCV 2020): a MobileNetV1 block made binary, with RSign
    before and RPReLU after every convolution and a shortcut around each.

        x (int8) -> RSign -> binary 3x3 conv (stride s) -> BN -> q   (+ x, 2x2 avg-pooled if s = 2)
          -> q -> RPReLU -> q = y
        y -> RSign -> binary 1x1 conv C->C -> BN -> q  (+ y) -> q ............. out = in
                   \\-> two binary 1x1 convs C->C -> BN -> q, each (+ y) -> q
                        -> Concat ........................................ out = 2 in
          -> RPReLU -> q = output

    (q: an 8-bit quantizer.) The normal block is `ReActNetBlock(C, C, 1)`, the reduction block
    `ReActNetBlock(C, 2C, 2)`: the paper doubles channels by concatenating two 1x1 convolutions'
    outputs, each with the same shortcut y, so that every Add keeps an identity shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, pow2_scales: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, not {stride}")
        if out_channels not in (in_channels, 2 * in_channels):
            raise ValueError(f"out_channels must be in_channels or twice that, not {out_channels}")
        s, c = scales(pow2_scales), in_channels
        stream_range = 128 * s.stream
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pow2_scales, self.pools_input = pow2_scales, stride == 2
        # 3x3 part
        self.rsign3 = RSign(c, stream_range)
        self.conv3 = BinaryConvBN(c, c, 3, stride, s.norm, pow2_scales)
        self.pool = nn.AvgPool2d(2, 2) if stride == 2 else None
        self.add3_quant = int8_quant(s.stream, pow2_scales)
        self.rprelu3 = RPReLU(c, stream_range)
        self.rprelu3_quant = int8_quant(s.stream, pow2_scales)
        # 1x1 part
        self.rsign1 = RSign(c, stream_range)
        branches = out_channels // in_channels
        self.convs1 = nn.ModuleList(BinaryConvBN(c, c, 1, 1, s.norm, pow2_scales) for _ in range(branches))
        self.add1_quants = nn.ModuleList(int8_quant(s.stream, pow2_scales) for _ in range(branches))
        self.rprelu1 = RPReLU(out_channels, stream_range)
        self.out_quant = int8_quant(s.stream, pow2_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.pool(x) if self.pool is not None else x
        y = self.add3_quant(self.conv3(self.rsign3(x)) + shortcut)
        y = self.rprelu3_quant(self.rprelu3(y))
        a = self.rsign1(y)
        sums = [q(conv(a) + y) for conv, q in zip(self.convs1, self.add1_quants)]
        z = sums[0] if len(sums) == 1 else torch.cat(sums, dim=1)
        return self.out_quant(self.rprelu1(z))


# --------------------------------------------------------------------------- Bi-Real Net

class BiRealBlock(Block):
    """A Bi-Real Net block (Liu et al., "Bi-Real Net: Enhancing the Performance of 1-bit CNNs with
    Improved Representational Capability and Advanced Training Algorithm", ECCV 2018): one binary
    3x3 convolution with an identity shortcut around it, so the real-valued activations before
    each sign are carried on.

        x (int8) -> sign -> binary 3x3 conv -> BN -> q  (+ x) -> q = output
    """

    def __init__(self, channels: int, pow2_scales: bool = True) -> None:
        super().__init__()
        s = scales(pow2_scales)
        self.in_channels = self.out_channels = channels
        self.pow2_scales = pow2_scales
        self.sign = sign_quant()
        self.conv = BinaryConvBN(channels, channels, 3, 1, s.norm, pow2_scales)
        self.add_quant = int8_quant(s.stream, pow2_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_quant(self.conv(self.sign(x)) + x)


class BiRealDownsampleBlock(Block):
    """Bi-Real Net's downsampling block: a strided binary 3x3 convolution, and a shortcut that
    average-pools, then changes the channel count with an 8-bit ("real-valued") 1x1 convolution.

        x (int8) -> sign -> binary 3x3 conv, stride 2 (in->out) -> BN -> q  ----\\
        x -> 2x2 avg pool -> q -> 8-bit 1x1 conv (in->out) -> BN -> q  --------- + -> q = output
    """

    def __init__(self, in_channels: int, out_channels: int, pow2_scales: bool = True) -> None:
        super().__init__()
        s = scales(pow2_scales)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, 2
        self.pow2_scales, self.pools_input = pow2_scales, True
        self.sign = sign_quant()
        self.conv = BinaryConvBN(in_channels, out_channels, 3, 2, s.norm, pow2_scales)
        self.pool = nn.AvgPool2d(2, 2)
        self.shortcut = Int8ConvBN(in_channels, out_channels, s.stream, s.norm, pow2_scales)
        self.add_quant = int8_quant(s.stream, pow2_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_quant(self.conv(self.sign(x)) + self.shortcut(self.pool(x)))


# --------------------------------------------------------------------------- BinaryDenseNet

class DenseLayer(Block):
    """A BinaryDenseNet layer (Bethge et al., "BinaryDenseNet: Developing an Architecture for
    Binary Neural Networks", ICCV Workshops 2019): `growth` new feature maps from a binary 3x3
    convolution, concatenated to the input, which is passed on untouched.

        x (int8) -> BN -> sign -> binary 3x3 conv (in->growth) -> BN -> q
        Concat(x, that) = output (in + growth channels)

    No quantizer follows the Concat: both its inputs are quantizer outputs (of different scales,
    one per group of channels).
    """

    def __init__(self, in_channels: int, growth: int, pow2_scales: bool = True) -> None:
        super().__init__()
        s = scales(pow2_scales)
        self.in_channels, self.out_channels = in_channels, in_channels + growth
        self.pow2_scales = pow2_scales
        self.bn = nn.BatchNorm2d(in_channels)
        self.sign = sign_quant()
        self.conv = BinaryConvBN(in_channels, growth, 3, 1, s.norm, pow2_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(self.sign(self.bn(x)))], dim=1)


class DenseTransition(Block):
    """BinaryDenseNet's transition, in the paper's recommended form: max pool, ReLU, then an 8-bit
    ("full-precision") 1x1 convolution that reduces the channels.

        x (int8) -> 2x2 max pool -> ReLU -> q -> 8-bit 1x1 conv (in->out) -> BN -> q = output
    """

    def __init__(self, in_channels: int, out_channels: int, pow2_scales: bool = True) -> None:
        super().__init__()
        s = scales(pow2_scales)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, 2
        self.pow2_scales = pow2_scales
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.conv = Int8ConvBN(in_channels, out_channels, s.stream, s.norm, pow2_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.relu(self.pool(x)))


# --------------------------------------------------------------------------- network wrapper

class BlockNet(nn.Module):
    """One block as a network: images in [0, 1) of shape (N, C, H, W) -> 8-bit input quantizer ->
    block -> the block's output, 4-D. One input, one output, so it exports and builds on its own.

    The input quantizer has scale 2^-7 with power-of-two scales, 1/127 with float scales, except
    in front of a block that average-pools its input (R7), which gets 2^-7 in both flavours.
    """

    def __init__(self, block: Block, in_channels: int, image_size: int) -> None:
        super().__init__()
        if block.in_channels != in_channels:
            raise ValueError(f"the block takes {block.in_channels} channels, not {in_channels}")
        if image_size % block.stride:
            raise ValueError(f"image size {image_size} is not a multiple of the stride {block.stride}")
        pow2 = block.pow2_scales or block.pools_input
        self.input_quant = int8_quant(scales(pow2).input, pow2)
        self.block = block
        self.input_shape = (1, in_channels, image_size, image_size)
        size = image_size // block.stride
        self.output_shape = (1, block.out_channels, size, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.input_quant(x))


# --------------------------------------------------------------------------- random parameters

def _randomize_bn(bn: nn.BatchNorm2d, spread: float, g: torch.Generator) -> None:
    """Running statistics centred on an input of standard deviation `spread`: mean within
    +-spread / 2, variance spread^2 * [0.5, 1.5), so outputs spread about |weight|; a fifth of
    the weights negative (falling channels), biases in [-0.5, 0.5)."""
    n = bn.num_features
    bn.running_mean.copy_((torch.rand(n, generator=g) - 0.5) * spread)
    bn.running_var.copy_((torch.rand(n, generator=g) + 0.5) * spread ** 2)
    sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
    bn.weight.copy_(sign * (torch.rand(n, generator=g) + 0.5))
    bn.bias.copy_(torch.rand(n, generator=g) - 0.5)


def randomize_block(model: nn.Module, seed: int) -> nn.Module:
    """Deterministic random parameters "as after training" for every block in `model`.

    Binary convolutions: weights uniform(-1, 1) (binarized to +-1), their BatchNorm centred on the
    accumulator's spread sqrt(fan_in) (a sum of fan_in +-1 products). 8-bit 1x1 convolutions:
    weights normal with std 1/sqrt(fan_in), which keeps the spread of their input, so their
    BatchNorm is centred on 1. Other BatchNorms (DenseLayer's, in front of a sign) read 8-bit
    activations and are centred on 1 too. LearnableBias: uniform within `BIAS_FRACTION` of its
    activation range. PReLU slopes uniform in `PRELU_SLOPES`. Returns the model in eval mode.
    """
    g = torch.Generator().manual_seed(seed)
    done: set[nn.Module] = set()
    with torch.no_grad():
        for m in model.modules():
            if m in done:
                continue
            if isinstance(m, BinaryConvBN):
                m.conv.weight.copy_(torch.rand(m.conv.weight.shape, generator=g) * 2 - 1)
                _randomize_bn(m.bn, m.conv.weight[0].numel() ** 0.5, g)
                done.add(m.bn)
            elif isinstance(m, Int8ConvBN):
                fan_in = m.conv.weight[0].numel()
                m.conv.weight.copy_(torch.randn(m.conv.weight.shape, generator=g) / fan_in ** 0.5)
                _randomize_bn(m.bn, 1.0, g)
                done.add(m.bn)
            elif isinstance(m, nn.BatchNorm2d):
                _randomize_bn(m, 1.0, g)
            elif isinstance(m, LearnableBias):
                m.bias.copy_((torch.rand(m.bias.shape, generator=g) * 2 - 1) * BIAS_FRACTION * m.act_range)
            elif isinstance(m, nn.PReLU):
                lo, hi = PRELU_SLOPES
                m.weight.copy_(lo + (hi - lo) * torch.rand(m.weight.shape, generator=g))
    return model.eval()


def saturation(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[float, float]]:
    """For every 8-bit quantizer in `model` (by module name): the fraction of its outputs on `x`
    that are at the end of the range (level -128 or 127) and the fraction that are zero."""
    stats: dict[str, tuple[float, float]] = {}

    def hook(name: str, quant: QuantIdentity):
        def record(module, inputs, output) -> None:
            levels = torch.round(output / quant.act_quant.scale())
            stats[name] = (float(((levels <= -128) | (levels >= 127)).float().mean()),
                           float((levels == 0).float().mean()))
        return record

    hooks = [m.register_forward_hook(hook(name, m)) for name, m in model.named_modules() if is_int8_quant(m)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return stats

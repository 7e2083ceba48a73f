"""Shortcut graphs beyond the four families' blocks: the patterns other tools fail on, and random
compositions of forks, adds, concatenations and pools for the test ladder.

The patterns (each one `Block`, to wrap in `BlockNet`):

- `ScaledBranchResidual`: the branch ends in a plain float Mul (a learned scalar gain) after its
  quantizer, right before the Add: the operands' scales are then a float product apart;
- `ConcatOfScales`: two branches quantized with different float scales, concatenated, then a
  BatchNorm and a sign over the concatenation and a binary convolution;
- `PReLUBlock`: a per-channel PReLU with negative slopes between two 8-bit quantizers.

`random_shortcut_net(seed)` draws a small network: an input quantizer and two or three stages, each
a residual, a dense concatenation or a downsampling residual with an average-pooled shortcut,
with power-of-two or float scales, and random parameters "as after training".
"""

from __future__ import annotations

import random

import torch
from torch import nn

from hwgen.models.blocks import (
    BinaryConvBN, Block, BlockNet, DenseLayer, RSign, int8_quant, randomize_block, scales, sign_quant,
)


class ScaledBranchResidual(Block):
    """x (int8) -> sign -> binary 3x3 conv -> BN -> q8 -> * gain (a float scalar) ; + x ; -> q8."""

    def __init__(self, channels: int, gain: float = 0.7113, pow2_scales: bool = False) -> None:
        super().__init__()
        s = scales(pow2_scales)
        self.in_channels = self.out_channels = channels
        self.pow2_scales = pow2_scales
        self.sign = sign_quant()
        self.branch = BinaryConvBN(channels, channels, 3, 1, s.norm, pow2_scales)
        self.gain = gain
        self.quant = int8_quant(s.stream, pow2_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.branch(self.sign(x)) * self.gain + x)


class ConcatOfScales(Block):
    """x (int8) -> two branches [sign -> binary 1x1 conv -> BN -> q8 (scales s1 != s2)] ->
    Concat -> BN -> sign -> binary 3x3 conv -> BN -> q8."""

    def __init__(self, channels: int, pow2_scales: bool = False) -> None:
        super().__init__()
        s = scales(pow2_scales)
        self.in_channels = self.out_channels = channels
        self.pow2_scales = pow2_scales
        self.sign = sign_quant()
        self.a = BinaryConvBN(channels, channels, 1, 1, s.norm, pow2_scales)
        self.b = BinaryConvBN(channels, channels, 1, 1, s.stream, pow2_scales)
        self.bn = nn.BatchNorm2d(2 * channels)
        self.sign2 = sign_quant()
        self.out = BinaryConvBN(2 * channels, channels, 3, 1, s.stream, pow2_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.sign(x)
        both = torch.cat([self.a(y), self.b(y)], dim=1)
        return self.out(self.sign2(self.bn(both)))


class PReLUBlock(Block):
    """x (int8) -> PReLU (one slope per channel, some negative) -> q8."""

    def __init__(self, channels: int, pow2_scales: bool = False) -> None:
        super().__init__()
        self.in_channels = self.out_channels = channels
        self.pow2_scales = pow2_scales
        self.prelu = nn.PReLU(channels)
        self.quant = int8_quant(scales(pow2_scales).stream, pow2_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.prelu(x))


class Residual(Block):
    """x -> RSign -> binary conv (3x3 or 1x1) -> BN -> q8 ; + x ; -> q8."""

    def __init__(self, channels: int, kernel: int, pow2_scales: bool) -> None:
        super().__init__()
        s = scales(pow2_scales)
        self.in_channels = self.out_channels = channels
        self.pow2_scales = pow2_scales
        self.rsign = RSign(channels, 128 * s.stream)
        self.branch = BinaryConvBN(channels, channels, kernel, 1, s.norm, pow2_scales)
        self.quant = int8_quant(s.stream, pow2_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.branch(self.rsign(x)) + x)


class PooledResidual(Block):
    """x (power-of-two scale) -> sign -> binary 3x3 conv stride 2 -> BN -> q8 ; + avgpool2x2(x) ; -> q8."""

    def __init__(self, channels: int, pow2_scales: bool) -> None:
        super().__init__()
        s = scales(pow2_scales)
        self.in_channels = self.out_channels = channels
        self.stride, self.pow2_scales, self.pools_input = 2, pow2_scales, True
        self.sign = sign_quant()
        self.branch = BinaryConvBN(channels, channels, 3, 2, s.norm, pow2_scales)
        self.pool = nn.AvgPool2d(2, 2)
        self.quant = int8_quant(scales(True).stream, True)  # the next stage may pool again

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.branch(self.sign(x)) + self.pool(x))


class Stages(Block):
    """Blocks one after the other."""

    def __init__(self, blocks: list[Block]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.in_channels, self.out_channels = blocks[0].in_channels, blocks[-1].out_channels
        self.stride = 1
        for b in blocks:
            self.stride *= b.stride
        self.pow2_scales = all(b.pow2_scales for b in blocks)
        self.pools_input = blocks[0].pools_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x


def random_shortcut_net(seed: int, channels: int = 4, image: int = 8) -> BlockNet:
    """Two or three stages drawn at random: residual (3x3 or 1x1 branch), pooled residual (halves
    the image) or dense concatenation (channels grow). As in the families the stages come from, a
    dense layer is followed only by dense layers: a concatenation of differently scaled tensors
    feeds thresholds, never an Add or a pool."""
    rng = random.Random(seed)
    blocks: list[Block] = []
    c, size = channels, image
    for _ in range(rng.choice((2, 3))):
        dense_before = bool(blocks) and isinstance(blocks[-1], DenseLayer)
        kinds = ("dense",) if dense_before else ("residual", "dense", "pooled") if size >= 4 else ("residual", "dense")
        kind = rng.choice(kinds)
        pow2 = rng.random() < 0.5
        if kind == "pooled" and blocks and not blocks[-1].pow2_scales:
            kind = "residual"  # average pooling reads a power-of-two scaled tensor
        if kind == "residual":
            blocks.append(Residual(c, rng.choice((1, 3)), pow2))
        elif kind == "dense":
            blocks.append(DenseLayer(c, c, pow2_scales=pow2))
            c *= 2
        else:
            blocks.append(PooledResidual(c, True))
            size //= 2
    return randomize_block(BlockNet(Stages(blocks), channels, image), seed=seed)

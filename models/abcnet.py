"""ABC-Net (Lin et al., "Towards Accurate Binary Convolutional Neural Network", NeurIPS 2017) on
ResNet-18: every convolution of the residual blocks is

    sum_{m,n} alpha_m beta_n conv(B_m, A_n),   A_n = H_{v_n}(x) = sign(clip(x + v_n, 0, 1) - 1/2)

with M binary weight bases B_m (+-1), N binary activation bases A_n with learnable shifts v_n, and
fixed-point coefficients: alpha_m = a_m / 2^ALPHA_BITS, beta_n = b_n / 2^BETA_BITS, a_m and b_n
integers. The model computes the double sum in the form the hardware runs, which is the same
number in float arithmetic (every term is a small integer times a power of two, so nothing rounds):

    A = sum_n beta_n A_n                  an exact fixed-point activation (partial sums quantized
                                          to 8 bits of scale 2^-BETA_BITS, which never rounds)
    W = sum_m a_m B_m                     integer weights of a few bits
    y = conv(W, A) * 2^-ALPHA_BITS        (M = 1: conv(B_1, A) * alpha_1, N = 1: A = beta_1 A_1,
                                          so (1, 1) stays an XNOR-popcount convolution)

In hardware that is one multi-level matrix-vector unit per layer (W and A low-bit integers), fed
by N sign thresholds of the 8-bit input and the adds of their weighted signs; the alternative,
M x N XNOR-popcount units whose accumulators are summed with the integer coefficients a_m b_n, is
measured against it in `benchmarks/bench_abcnet_layer.py` (see docs/architecture.md).

    Stem: 8-bit 7x7 conv, stride 2, 3 -> 64 channels, 3x3 max pool stride 2
    stages of 64, 128, 256, 512 channels, two ResNet basic blocks each:
        x -> ABC conv 3x3 (stride s) -> BN -> q -> ABC conv 3x3 -> BN -> q  (+ x) -> q
        the first block of stages 2-4 downsamples its shortcut as Bi-Real Net does: a 2x2
        average pool and an 8-bit 1x1 convolution with BN
    Classifier: global average pool, 8-bit linear 512 -> 1000

The small config: a 3x3 stem (8 channels) with the max pool, two stages of one basic block
(8 and 16 channels), 32 x 32 images, 10 classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hwgen.models.blocks import Block, Int8ConvBN, int8_quant, scales, sign_quant
from hwgen.models.heads import Classifier, input_shape, resnet_layout

#: fraction bits of the weight-basis coefficients alpha_m and the activation-basis coefficients beta_n
ALPHA_BITS = 2
BETA_BITS = 3
#: the coefficients lie in [2^-bits, COEFFICIENT_MAX]
COEFFICIENT_MAX = 2.0


def fixed_point(value: torch.Tensor, bits: int) -> torch.Tensor:
    """`value` rounded to a multiple of 2^-bits within [2^-bits, COEFFICIENT_MAX - 2^-bits]; in
    training the gradient passes straight through the rounding."""
    step = 2.0 ** -bits
    rounded = torch.clamp(torch.round(value / step) * step, step, COEFFICIENT_MAX - step)
    return value + (rounded - value).detach() if value.requires_grad and torch.is_grad_enabled() else rounded


def binarize(latent: torch.Tensor) -> torch.Tensor:
    """+-1 (sign, with 0 -> +1); the gradient passes straight through in training."""
    signs = torch.where(latent >= 0, 1.0, -1.0)
    return latent + (signs - latent).detach() if latent.requires_grad and torch.is_grad_enabled() else signs


class ActivationBases(nn.Module):
    """A = sum_n beta_n sign(x + v_n - 1/2) on an 8-bit `x`: N shifted signs (BipolarQuant, sign(0)
    = +1) weighted by fixed-point beta_n. Each partial sum of two or more terms passes an 8-bit
    quantizer of scale 2^-BETA_BITS, which holds it exactly (it is a multiple of that scale below
    N * COEFFICIENT_MAX), so every tensor between units is a quantizer output."""

    def __init__(self, bases: int, act_range: float) -> None:
        super().__init__()
        if bases < 1:
            raise ValueError(f"an ABC-Net layer needs at least one activation base, not {bases}")
        if bases * COEFFICIENT_MAX >= 128 * 2.0 ** -BETA_BITS:
            raise ValueError(f"{bases} activation bases overflow the 8-bit partial sums")
        self.act_range = act_range
        spread = torch.linspace(-0.5, 0.5, bases) if bases > 1 else torch.zeros(1)
        self.shifts = nn.Parameter(spread - 0.5)  # v_n - 1/2: H_v's threshold at x + v = 1/2
        self.beta = nn.Parameter(torch.ones(bases))
        self.signs = nn.ModuleList(sign_quant() for _ in range(bases))
        self.sums = nn.ModuleList(int8_quant(2.0 ** -BETA_BITS, True) for _ in range(bases - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = fixed_point(self.beta, BETA_BITS)
        terms = [sign(x + self.shifts[n]) * beta[n] for n, sign in enumerate(self.signs)]
        total = terms[0]
        for term, quant in zip(terms[1:], self.sums):
            total = quant(total + term)
        return total

    def randomize_(self, g: torch.Generator) -> None:
        """Shifts spread over the input's range with jitter, coefficients in [0.5, 1.5)."""
        n = self.beta.numel()
        with torch.no_grad():
            base = torch.linspace(-0.5, 0.5, n) if n > 1 else torch.zeros(1)
            self.shifts.copy_(base + (torch.rand(n, generator=g) - 0.5) * 0.2 - 0.5)
            self.beta.copy_(0.5 + torch.rand(n, generator=g))


class ABCConv(nn.Module):
    """An ABC-Net convolution: N activation bases of the 8-bit input, M binary weight bases with
    fixed-point coefficients, `kernel` x `kernel` with padding kernel // 2. Its output is the
    float sum of the paper (exactly), for a BatchNorm to follow."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, weight_bases: int,
                 act_bases: int, act_range: float) -> None:
        super().__init__()
        if weight_bases < 1:
            raise ValueError(f"an ABC-Net layer needs at least one weight base, not {weight_bases}")
        self.stride, self.padding = stride, kernel // 2
        self.activations = ActivationBases(act_bases, act_range)
        self.latent = nn.Parameter(torch.randn(weight_bases, out_channels, in_channels, kernel, kernel) * 0.1)
        self.alpha = nn.Parameter(torch.ones(weight_bases))

    def weight_levels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(integer weights, the scale they carry): (B_1, alpha_1) for one base, else
        (sum_m a_m B_m, 2^-ALPHA_BITS)."""
        bases = binarize(self.latent)
        alpha = fixed_point(self.alpha, ALPHA_BITS)
        if bases.shape[0] == 1:
            return bases[0], alpha[0]
        levels = alpha * 2.0 ** ALPHA_BITS  # the integers a_m
        return torch.einsum("m,m...->...", levels, bases), torch.tensor(2.0 ** -ALPHA_BITS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, scale = self.weight_levels()
        return F.conv2d(self.activations(x), weights, stride=self.stride, padding=self.padding) * scale

    def init_from_real(self, real: torch.Tensor) -> None:
        """ABC-Net's initialisation from real weights W: B_m = sign(W - mean(W) + u_m std(W)) with
        u_m spread over [-1, 1], and alpha the least-squares fit of W by sum_m alpha_m B_m."""
        m = self.latent.shape[0]
        with torch.no_grad():
            centred = real - real.mean()
            u = torch.linspace(-1.0, 1.0, m) if m > 1 else torch.zeros(1)
            latent = torch.stack([centred + ui * real.std() for ui in u])
            bases = torch.where(latent >= 0, 1.0, -1.0)
            # least squares by the normal equations in float64, rounded: the same on every run
            # (a threaded float32 solver's last bits vary, and the fixed-point rounding shows it)
            design = bases.reshape(m, -1).T.double()
            alpha = torch.linalg.solve(design.T @ design, design.T @ real.reshape(-1, 1).double())
            alpha = torch.round(alpha.reshape(-1).abs() * 1e6) / 1e6
            self.latent.copy_(latent)
            self.alpha.copy_((alpha / alpha.max() * (COEFFICIENT_MAX / 2)).float())  # the scale goes into BN

    def randomize_(self, g: torch.Generator) -> None:
        """Bases and coefficients fitted to random real weights, as ABC-Net initialises them."""
        self.init_from_real(torch.randn(self.latent.shape[1:], generator=g))


class ABCConvBN(nn.Module):
    """ABC conv -> BatchNorm -> 8-bit quantizer."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, weight_bases: int, act_bases: int) -> None:
        super().__init__()
        s = scales(True)
        self.conv = ABCConv(in_channels, out_channels, 3, stride, weight_bases, act_bases, 128 * s.stream)
        self.bn = nn.BatchNorm2d(out_channels)
        self.quant = int8_quant(s.stream, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.bn(self.conv(x)))


class ABCBasicBlock(Block):
    """A ResNet basic block of two ABC convolutions and a shortcut around both.

        x (int8) -> ABC conv 3x3 (stride s) -> BN -> q -> ABC conv 3x3 -> BN -> q  (+ shortcut) -> q
        shortcut: x, or for s = 2 (or a change of width) 2x2 avg pool -> q -> 8-bit 1x1 conv -> BN -> q
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, weight_bases: int, act_bases: int) -> None:
        super().__init__()
        s = scales(True)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pools_input = stride == 2
        self.conv1 = ABCConvBN(in_channels, out_channels, stride, weight_bases, act_bases)
        self.conv2 = ABCConvBN(out_channels, out_channels, 1, weight_bases, act_bases)
        downsample = stride == 2 or in_channels != out_channels
        self.pool = nn.AvgPool2d(2, 2) if stride == 2 else None
        self.shortcut = Int8ConvBN(in_channels, out_channels, s.stream, s.norm, True) if downsample else None
        self.add_quant = int8_quant(s.stream, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.pool(x) if self.pool is not None else x
        if self.shortcut is not None:
            shortcut = self.shortcut(shortcut)
        return self.add_quant(self.conv2(self.conv1(x)) + shortcut)


class ABCNet(nn.Sequential):
    def __init__(self, weight_bases: int = 3, act_bases: int = 3, size: str = "imagenet",
                 image: tuple[int, int, int] = (3, 32, 32)) -> None:
        stem, widths, blocks, classes = resnet_layout(size, (2, 2, 2, 2), image[0])
        layers: list[nn.Module] = [stem]
        c = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks)):
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(ABCBasicBlock(c, width, stride, weight_bases, act_bases))
                c = width
        layers.append(Classifier(c, classes))
        super().__init__(*layers)
        self.weight_bases, self.act_bases = weight_bases, act_bases
        self.input_shape = input_shape(size, image)

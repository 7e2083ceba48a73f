"""The official ReActNet-A and Bi-Real-18 code ported to Brevitas as a user ports it: the
official block structure kept as it is, quantizers added only where hardware needs integers.

Unlike the zoo (`hwgen.models.blocks`, laid out for hwgen), these networks are written the way the
papers' repositories write them (ReActNet's `mobilenet/2_step2/reactnet.py` and
`resnet/2_step2/birealnet.py`, read for their structure):

- every binary convolution is a `HardBinaryConv`: binary weights times a per-channel scaling
  factor, the mean |w| of the layer's float weights, before its BatchNorm;
- the BatchNorm output of a binary convolution is added, un-quantized, to the shortcut;
- LearnableBias (a shift per channel) before each sign and around each PReLU (slope per channel);
- a stride-2 block average-pools its shortcut (ReActNet: 2x2 average pool; Bi-Real: 2x2 average
  pool, 1x1 full-precision convolution and BatchNorm); ReActNet's channel-doubling blocks
  concatenate two 1x1 binary convolutions, each added to the same shortcut, and its second block
  doubles the channels at stride 1, with no pooling.

Quantizers, where hardware needs integers:

- the sign: `SignedBinaryActPerTensorConst`, and binary weights: `SignedBinaryWeightPerTensorConst`
  (Brevitas' defaults, scale 0.1 for the weights);
- Brevitas' default 8-bit quantizer `QuantIdentity(bit_width=8)` (Int8ActPerTensorFloat, a float
  scale calibrated on data) after each real-valued sum (the residual adds, the stem's and the
  average pool's output) and after each RPReLU;
- Brevitas' defaults for the stem and the classifier: an 8-bit input quantizer, 8-bit weights
  (Int8WeightPerTensorFloat), a float bias on the classifier.

`pow2=True` puts power-of-two quantizers in those places (Int8ActPerTensorFixedPoint and
Int8WeightPerTensorFixedPoint, binary weights of scale 1), the form whose float arithmetic is exact.

Narrowed for small images: the channels divided by `width_divisor`, and a downsampling block keeps
stride 1 where its feature map is odd (the shortcut's 2x2 pool and the 3x3 stride-2 convolution
disagree on an odd size): on 32x32 images both networks keep every stride-2 block, on 28x28 MNIST
the maps stop at 7x7. `trained_looking` gives a port spread-out parameters and calibrates its
quantizers' scales on data.
"""

from __future__ import annotations

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant import (
    Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
)
from brevitas_examples.bnn_pynq.models.common import CommonWeightQuant
from torch import nn

#: ReActNet-A's channels: the stem's, then each block's output (`reactnet.py`'s stage_out_channel)
REACTNET_CHANNELS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
#: Bi-Real-18: four stages of four binary 3x3 convolutions, each with its own shortcut
BIREAL18_STAGES = ((64, 4, 1), (128, 4, 2), (256, 4, 2), (512, 4, 2))


class Quantizers:
    """The quantizers a port uses: Brevitas' defaults, or power-of-two ones in the same places."""

    def __init__(self, pow2: bool) -> None:
        self.pow2 = pow2

    def int8(self, quant_tensor: bool = False) -> QuantIdentity:
        """An 8-bit activation quantizer: `QuantIdentity(bit_width=8)` as users write it."""
        if self.pow2:
            return QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=quant_tensor)
        return QuantIdentity(bit_width=8, return_quant_tensor=quant_tensor)

    def sign(self) -> QuantIdentity:
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)

    def binary_weights(self) -> type:
        return CommonWeightQuant if self.pow2 else SignedBinaryWeightPerTensorConst

    def int8_weights(self) -> dict:
        return {"weight_quant": Int8WeightPerTensorFixedPoint} if self.pow2 else {"weight_bit_width": 8}


class LearnableBias(nn.Module):
    """The official code's `LearnableBias`: x plus a learned value per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.expand_as(x)


class HardBinaryConv(nn.Module):
    """The official `HardBinaryConv`: sign(w) times the mean |w| of each output channel's float
    weights. Ported: a binary-weight `QuantConv2d` whose output is multiplied by that mean (a
    per-channel float multiply before the BatchNorm)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, q: Quantizers) -> None:
        super().__init__()
        self.conv = QuantConv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False,
                                weight_quant=q.binary_weights(), weight_bit_width=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaling_factor = self.conv.weight.abs().mean(dim=(1, 2, 3)).view(1, -1, 1, 1).detach()
        return self.conv(x) * scaling_factor


class RPReLU(nn.Module):
    """move -> PReLU (slope per channel) -> move, as the official blocks write it after each sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.move_in, self.prelu, self.move_out = LearnableBias(channels), nn.PReLU(channels), LearnableBias(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.move_out(self.prelu(self.move_in(x)))


def _stride(stride: int, size: int) -> int:
    """A downsampling block's stride on a map of `size` (narrowed: 1 where the map is odd)."""
    return stride if size % 2 == 0 else 1


class ReActNetBasicBlock(nn.Module):
    """`reactnet.py`'s BasicBlock: a 3x3 binary convolution added to the (pooled) input, RPReLU; then
    a 1x1 binary convolution added to that, or, where the block doubles the channels, two 1x1
    binary convolutions each added to it and concatenated; RPReLU. Quantized after each sum and
    each RPReLU."""

    def __init__(self, inplanes: int, planes: int, stride: int, q: Quantizers) -> None:
        super().__init__()
        self.stride, self.doubles = stride, inplanes != planes
        self.move11, self.sign1 = LearnableBias(inplanes), q.sign()
        self.binary_3x3 = HardBinaryConv(inplanes, inplanes, 3, stride, q)
        self.bn1 = nn.BatchNorm2d(inplanes)
        if stride == 2:
            self.pooling = nn.AvgPool2d(2, 2)
        self.sum1, self.rprelu1, self.act1 = q.int8(), RPReLU(inplanes), q.int8()
        self.move21, self.sign2 = LearnableBias(inplanes), q.sign()
        if self.doubles:
            self.binary_pw_down1 = HardBinaryConv(inplanes, inplanes, 1, 1, q)
            self.binary_pw_down2 = HardBinaryConv(inplanes, inplanes, 1, 1, q)
            self.bn2_1, self.bn2_2 = nn.BatchNorm2d(inplanes), nn.BatchNorm2d(inplanes)
            self.sum2_1, self.sum2_2 = q.int8(), q.int8()
        else:
            self.binary_pw = HardBinaryConv(inplanes, planes, 1, 1, q)
            self.bn2_1, self.sum2_1 = nn.BatchNorm2d(planes), q.int8()
        self.rprelu2, self.act2 = RPReLU(planes), q.int8()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.bn1(self.binary_3x3(self.sign1(self.move11(x))))
        if self.stride == 2:
            x = self.pooling(x)
        out1 = self.act1(self.rprelu1(self.sum1(x + out1)))
        out2 = self.sign2(self.move21(out1))
        if self.doubles:
            out2_1 = self.sum2_1(self.bn2_1(self.binary_pw_down1(out2)) + out1)
            out2_2 = self.sum2_2(self.bn2_2(self.binary_pw_down2(out2)) + out1)
            out2 = torch.cat([out2_1, out2_2], dim=1)
        else:
            out2 = self.sum2_1(self.bn2_1(self.binary_pw(out2)) + out1)
        return self.act2(self.rprelu2(out2))


class ReActNetPort(nn.Module):
    """ReActNet-A as `reactnet.py` writes it: a 3x3 stride-2 stem with BatchNorm, 13 blocks, global
    average pool, linear classifier."""

    def __init__(self, image: tuple[int, int, int] = (3, 32, 32), classes: int = 10, width_divisor: int = 8,
                 pow2: bool = False) -> None:
        super().__init__()
        q = Quantizers(pow2)
        channels = [c // width_divisor for c in REACTNET_CHANNELS]
        self.input_shape = (1, *image)
        self.inq = q.int8()
        self.stem = QuantConv2d(image[0], channels[0], 3, stride=2, padding=1, bias=False, **q.int8_weights())
        self.stem_bn, self.stem_q = nn.BatchNorm2d(channels[0]), q.int8()
        size, blocks = (image[1] + 1) // 2, []
        for cin, cout in zip(channels, channels[1:]):
            stride = _stride(2, size) if cin != cout and cout != channels[1] else 1
            blocks.append(ReActNetBasicBlock(cin, cout, stride, q))
            size //= stride
        self.features = nn.Sequential(*blocks)
        self.pool, self.pool_q = nn.AdaptiveAvgPool2d(1), q.int8(quant_tensor=True)
        self.fc = QuantLinear(channels[-1], classes, bias=True, **q.int8_weights())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.stem_q(self.stem_bn(self.stem(self.inq(x)))))
        return self.fc(self.pool_q(self.pool(x)).flatten(1))


class BiRealBasicBlock(nn.Module):
    """`birealnet.py`'s BasicBlock: move, sign, one binary 3x3 convolution and its BatchNorm added to
    the shortcut (where the block downsamples: 2x2 average pool, 1x1 full-precision convolution,
    BatchNorm), then RPReLU. Quantized after the sum and after the RPReLU."""

    def __init__(self, inplanes: int, planes: int, stride: int, q: Quantizers) -> None:
        super().__init__()
        self.move0, self.sign = LearnableBias(inplanes), q.sign()
        self.binary_conv = HardBinaryConv(inplanes, planes, 3, stride, q)
        self.bn1 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            pool = [nn.AvgPool2d(2, stride)] if stride != 1 else []
            self.downsample = nn.Sequential(*pool, QuantConv2d(inplanes, planes, 1, bias=False, **q.int8_weights()),
                                            nn.BatchNorm2d(planes))
        self.sum, self.rprelu, self.act = q.int8(), RPReLU(planes), q.int8()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.binary_conv(self.sign(self.move0(x))))
        residual = x if self.downsample is None else self.downsample(x)
        return self.act(self.rprelu(self.sum(out + residual)))


class BiReal18Port(nn.Module):
    """Bi-Real-18 as `birealnet.py` writes it: a 7x7 stride-2 stem with BatchNorm, a 3x3 stride-2
    max-pool with padding 1, four stages of four blocks, global average pool, linear classifier."""

    def __init__(self, image: tuple[int, int, int] = (3, 32, 32), classes: int = 10, width_divisor: int = 8,
                 pow2: bool = False) -> None:
        super().__init__()
        q = Quantizers(pow2)
        self.input_shape = (1, *image)
        width = BIREAL18_STAGES[0][0] // width_divisor
        self.inq = q.int8()
        self.conv1 = QuantConv2d(image[0], width, 7, stride=2, padding=3, bias=False, **q.int8_weights())
        self.bn1, self.stem_q = nn.BatchNorm2d(width), q.int8()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        size, cin, blocks = ((image[1] + 1) // 2 + 1) // 2, width, []
        for planes, count, stride in BIREAL18_STAGES:
            planes //= width_divisor
            for i in range(count):
                s = _stride(stride, size) if i == 0 else 1
                blocks.append(BiRealBasicBlock(cin, planes, s, q))
                cin, size = planes, size // s
        self.features = nn.Sequential(*blocks)
        self.pool, self.pool_q = nn.AdaptiveAvgPool2d(1), q.int8(quant_tensor=True)
        self.fc = QuantLinear(cin, classes, bias=True, **q.int8_weights())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.stem_q(self.bn1(self.conv1(self.inq(x)))))
        return self.fc(self.pool_q(self.pool(self.features(x))).flatten(1))


def trained_looking(module: nn.Module, data: torch.Tensor, seed: int = 0, batches: int = 4) -> nn.Module:
    """`module` with the spread of a trained binary network, returned in eval mode: shifts, PReLU
    slopes, weights and BatchNorm affines drawn at random (seeded); each BatchNorm's statistics
    those of its own input on `data` (off by up to a tenth of a standard deviation, as training
    leaves them); its quantizers' scales calibrated on `data` (quantizers in training mode,
    everything else in eval mode)."""
    g = torch.Generator().manual_seed(seed)

    def uniform(shape: torch.Size, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    def observe(bn: nn.BatchNorm2d, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach()
        var = x.var(dim=(0, 2, 3)) + 1e-3
        bn.running_var.copy_(var)
        bn.running_mean.copy_(x.mean(dim=(0, 2, 3)) + uniform(var.shape, -0.1, 0.1) * var.sqrt())

    module.eval()
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, LearnableBias):
                sub.bias.copy_(uniform(sub.bias.shape, -0.2, 0.2))
            elif isinstance(sub, nn.PReLU):
                sub.weight.copy_(uniform(sub.weight.shape, -0.25, 0.5))
            elif isinstance(sub, nn.BatchNorm2d):
                sub.weight.copy_(uniform(sub.weight.shape, 0.5, 1.5))
                sub.bias.copy_(uniform(sub.bias.shape, -0.3, 0.3))
            elif isinstance(sub, (QuantConv2d, QuantLinear)):
                sub.weight.copy_(torch.randn(sub.weight.shape, generator=g) * 0.05)
            elif isinstance(sub, QuantIdentity):
                sub.train()
        # one pass in which each BatchNorm takes its input's statistics before it normalizes
        hooks = [m.register_forward_pre_hook(observe) for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
        module(data)
        for hook in hooks:
            hook.remove()
        for i in range(batches):
            module(data[i::batches])
    return module.eval()

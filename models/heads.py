"""The ends of the zoo's networks: a stem that quantizes images and runs the full-precision (8-bit in
hardware) first convolution, and a classifier of global average pooling and an 8-bit linear layer.

    image in [0, 1) -> uint8 pixels (scale 1/256) -> 8-bit k x k conv, stride s -> BN -> q8
      [-> ReLU -> q8] [-> 3x3 max pool, stride 2, padding 1]                          (Stem)
    x (int8) -> global average pool -> q8 -> flatten -> 8-bit linear + bias -> logits  (Classifier)

Every quantizer has a power-of-two scale and the 8-bit weights too (`int8_weights(True)`), so the
model's float arithmetic is exact and the accelerator equals it bit for bit; the logits' bias is
added on the host, as the model adds it.
"""

from __future__ import annotations

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from torch import nn

from hwgen.models.blocks import int8_quant, int8_weights, scales
from hwgen.models.mlp import PixelQuant


class Stem(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, *, relu: bool = False,
                 max_pool: bool = False) -> None:
        super().__init__()
        s = scales(True)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride = stride * (2 if max_pool else 1)
        self.pixels = QuantIdentity(act_quant=PixelQuant, return_quant_tensor=False)
        self.conv = QuantConv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False,
                                weight_quant=int8_weights(True), weight_bit_width=8)
        self.bn = nn.BatchNorm2d(out_channels)
        self.quant = int8_quant(s.stream, True)
        self.relu = nn.Sequential(nn.ReLU(), int8_quant(s.stream, True)) if relu else None
        self.pool = nn.MaxPool2d(3, 2, padding=1) if max_pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(self.bn(self.conv(self.pixels(x))))
        if self.relu is not None:
            x = self.relu(x)
        return self.pool(x) if self.pool is not None else x


def input_shape(size: str, image: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """The network's input shape (batch 1): ImageNet's, or the small config's `image`."""
    return (1, 3, 224, 224) if size == "imagenet" else (1, *image)


class Classifier(nn.Module):
    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.quant = int8_quant(scales(True).stream, True)
        self.fc = QuantLinear(channels, classes, bias=True, weight_quant=int8_weights(True), weight_bit_width=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.quant(self.pool(x)).flatten(1))


def resnet_layout(size: str, imagenet_blocks: tuple[int, ...], in_channels: int = 3, small_width: int = 8,
                  small_blocks: tuple[int, int] = (1, 1)) -> tuple[Stem, tuple[int, ...], tuple[int, ...], int]:
    """(stem, stage widths, basic blocks per stage, classes) of a ResNet-shaped zoo network: at
    ImageNet size the 7x7 stride-2 stem with 3x3 max pool, stages of 64, 128, 256 and 512 channels
    and 1000 classes; the small config a 3x3 stem of `small_width` channels with the max pool, two
    stages of `small_blocks` basic blocks (`small_width` and twice that channels) and 10 classes,
    on images of `in_channels` channels."""
    if size == "imagenet":
        return Stem(3, 64, 7, 2, max_pool=True), (64, 128, 256, 512), imagenet_blocks, 1000
    w = small_width
    return Stem(in_channels, w, 3, 1, max_pool=True), (w, 2 * w), small_blocks, 10

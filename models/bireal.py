"""Bi-Real Net-18 and -34 (Liu et al., "Bi-Real Net: Enhancing the Performance of 1-bit CNNs",
ECCV 2018; 56.4 % / 62.2 % ImageNet top-1): ResNet with an identity shortcut around every binary
3x3 convolution.

    Stem: 8-bit 7x7 conv, stride 2, 3 -> 64 channels, 3x3 max pool stride 2
    stages of 64, 128, 256, 512 channels; each ResNet basic block is two Bi-Real blocks (two binary
        3x3 convolutions, a shortcut around each); the first of stages 2-4 downsamples: its
        shortcut average-pools 2x2 and changes channels with an 8-bit 1x1 convolution and BN
        (18: 2, 2, 2, 2 basic blocks; 34: 3, 4, 6, 3)
    Classifier: global average pool, 8-bit linear 512 -> 1000

The small config: a 3x3 stem (32 channels) with the 3x3 max pool, two stages of two basic blocks,
as every stage of ResNet-18 has (32 and 64 channels, eight binary convolutions), 32 x 32 images
(or the data's), 10 classes. With one basic block per stage it trained to 95.2-96.3 % on
MNIST-5k by the `bireal` recipe; with two, past 97 % (`benchmarks/bench_train.py`).

`image` is the small config's input (channels, height, width): CIFAR-style (3, 32, 32) by default,
(1, 28, 28) for MNIST; the ImageNet config is always (3, 224, 224).
"""

from __future__ import annotations

from torch import nn

from hwgen.models.blocks import BiRealBlock, BiRealDownsampleBlock
from hwgen.models.heads import Classifier, input_shape, resnet_layout

BASIC_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
#: channels of the small config's stem and first stage (the second has twice as many)
SMALL_WIDTH = 32
#: basic blocks in each of the small config's two stages
SMALL_BLOCKS = (2, 2)


class BiRealNet(nn.Sequential):
    def __init__(self, depth: int = 18, size: str = "imagenet", image: tuple[int, int, int] = (3, 32, 32)) -> None:
        stem, widths, blocks, classes = resnet_layout(size, BASIC_BLOCKS[depth], image[0], SMALL_WIDTH, SMALL_BLOCKS)
        layers: list[nn.Module] = [stem]
        c = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks)):
            for index in range(count):
                if stage > 0 and index == 0:
                    layers += [BiRealDownsampleBlock(c, width), BiRealBlock(width)]
                else:
                    layers += [BiRealBlock(width), BiRealBlock(width)]
                c = width
        layers.append(Classifier(c, classes))
        super().__init__(*layers)
        self.input_shape = input_shape(size, image)

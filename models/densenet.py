"""BinaryDenseNet-28 and -37 (Bethge et al., "BinaryDenseNet: Developing an Architecture for Binary
Neural Networks", ICCV Workshops 2019; 60.7 % / 62.5 % ImageNet top-1): dense blocks that
concatenate each binary layer's output to its input, transitions that downsample.

    Stem: 8-bit 7x7 conv, stride 2, 3 -> 64 channels, ReLU, 3x3 max pool stride 2
    4 dense blocks of binary layers (growth 64; 28: 6, 6, 6, 5 layers; 37: 6, 8, 12, 6), each
        followed but the last by a transition: 2x2 max pool, ReLU, 8-bit 1x1 conv reducing the
        channels by 2.7, 2.7, 2.2 (28) or 3.3, 3.3, 4 (37), rounded to a multiple of 32
    BN, ReLU, classifier: global average pool, 8-bit linear -> 1000

The small config: a 3x3 stem (16 channels) with the max pool, two dense blocks of two layers
(growth 8) around one transition, 32 x 32 images, 10 classes.
"""

from __future__ import annotations

from torch import nn

from hwgen.models.blocks import DenseLayer, DenseTransition, int8_quant, scales
from hwgen.models.heads import Classifier, Stem, input_shape

#: layers per dense block and the transitions' reduction factors
PLANS = {28: ((6, 6, 6, 5), (2.7, 2.7, 2.2)), 37: ((6, 8, 12, 6), (3.3, 3.3, 4.0))}


def reduced(channels: int, factor: float, multiple: int) -> int:
    return max(multiple, int(round(channels / factor / multiple)) * multiple)


class BinaryDenseNet(nn.Sequential):
    def __init__(self, depth: int = 28, size: str = "imagenet", image: tuple[int, int, int] = (3, 32, 32)) -> None:
        imagenet = size == "imagenet"
        if imagenet:
            (layers_per_block, reductions), growth, width, multiple = PLANS[depth], 64, 64, 32
            stem, classes = Stem(3, width, 7, 2, relu=True, max_pool=True), 1000
        else:
            layers_per_block, reductions, growth, width, multiple = (2, 2), (2.0,), 8, 16, 8
            stem, classes = Stem(image[0], width, 3, 1, relu=True, max_pool=True), 10
        layers: list[nn.Module] = [stem]
        c = width
        for block, count in enumerate(layers_per_block):
            for _ in range(count):
                layers.append(DenseLayer(c, growth))
                c += growth
            if block < len(reductions):
                out = reduced(c, reductions[block], multiple)
                layers.append(DenseTransition(c, out))
                c = out
        layers += [nn.BatchNorm2d(c), nn.ReLU(), int8_quant(scales(True).stream, True), Classifier(c, classes)]
        super().__init__(*layers)
        self.input_shape = input_shape(size, image)

"""ReActNet-A (Liu et al., "ReActNet: Towards Precise Binary Neural Network with Generalized
Activation Functions", ECCV 2020; 69.4 % ImageNet top-1): MobileNetV1 made binary.

    Stem: 8-bit 3x3 conv, stride 2, 3 -> 32 channels
    13 ReActNet blocks (models/blocks.py): 32->64, 64->128 s2, 128, 128->256 s2, 256,
        256->512 s2, 512 x 5, 512->1024 s2, 1024; a block that doubles channels concatenates two
        1x1 binary convolutions, a stride-2 block average-pools its shortcut
    Classifier: global average pool, 8-bit linear 1024 -> 1000

The small config keeps the block types (channel-doubling, reduction and normal blocks): a
16-channel stride-1 stem, then 32, 64 s2, 64, 128 s2, 128 channels, 10 classes.

`image` is the small config's input (channels, height, width): CIFAR-style (3, 32, 32) by default,
(1, 28, 28) for MNIST; the ImageNet config is always (3, 224, 224).
"""

from __future__ import annotations

from torch import nn

from hwgen.models.blocks import ReActNetBlock
from hwgen.models.heads import Classifier, Stem, input_shape

#: (out channels, stride) of ReActNet-A's blocks after the 32-channel stem
IMAGENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
                   (512, 1), (512, 1), (1024, 2), (1024, 1))
#: the small config: a 16-channel stem and five blocks, two of them reductions (28 -> 14 -> 7 on
#: MNIST, 32 -> 16 -> 8 on CIFAR-style images), wide and deep enough to reach 97 % on MNIST-5k
SMALL_WIDTH = 16
SMALL_BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1))


class ReActNetA(nn.Sequential):
    def __init__(self, size: str = "imagenet", image: tuple[int, int, int] = (3, 32, 32)) -> None:
        imagenet = size == "imagenet"
        width, plan, classes = (32, IMAGENET_BLOCKS, 1000) if imagenet else (SMALL_WIDTH, SMALL_BLOCKS, 10)
        layers: list[nn.Module] = [Stem(3 if imagenet else image[0], width, 3, 2 if imagenet else 1)]
        c = width
        for out, stride in plan:
            layers.append(ReActNetBlock(c, out, stride))
            c = out
        layers.append(Classifier(c, classes))
        super().__init__(*layers)
        self.input_shape = input_shape(size, image)

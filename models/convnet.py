"""Small convolutional BNNs for the conv test ladder: any mix of kernel, stride, padding, pooling.

    image in [0, 1] -> 8-bit input quantizer (power-of-two scale, exact float arithmetic)
    -> [QuantConv2d (binary weights) -> BatchNorm2d -> sign -> optional 2x2 max pool] x convs
    -> flatten -> QuantLinear -> BatchNorm1d
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
from torch import nn

from hwgen.models.mlp import PixelQuant


@dataclass(frozen=True)
class ConvSpec:
    out_channels: int
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    pool: bool = False
    groups: int = 1
    dilation: int = 1


class BnnConvNet(nn.Module):
    def __init__(self, in_channels: int, size: tuple[int, int], convs: list[ConvSpec], classes: int = 10,
                 act_bits: int = 1) -> None:
        super().__init__()
        self.input_quant = QuantIdentity(act_quant=PixelQuant, return_quant_tensor=False)
        layers: list[nn.Module] = []
        c, (h, w) = in_channels, size
        for spec in convs:
            layers += [
                QuantConv2d(c, spec.out_channels, spec.kernel, stride=spec.stride, padding=spec.padding,
                            groups=spec.groups, dilation=spec.dilation, bias=False,
                            weight_quant=CommonWeightQuant, weight_bit_width=1),
                nn.BatchNorm2d(spec.out_channels),
                QuantIdentity(act_quant=CommonActQuant, bit_width=act_bits),
            ]
            span = spec.dilation * (spec.kernel - 1) + 1
            h = (h + 2 * spec.padding - span) // spec.stride + 1
            w = (w + 2 * spec.padding - span) // spec.stride + 1
            c = spec.out_channels
            if spec.pool:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            QuantLinear(c * h * w, classes, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1),
            nn.BatchNorm1d(classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.input_quant(x))
        return self.classifier(x.reshape(x.shape[0], -1))


def randomize_conv(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics centred on each channel's accumulator spread, with a
    fifth of the channels falling (negative scale): thresholds land inside the accumulator range."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        fan_in = None
        for m in model.modules():
            if isinstance(m, (QuantConv2d, QuantLinear)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 2 - 1)
                fan_in = m.weight[0].numel()
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_((torch.rand(n, generator=g) - 0.5) * fan_in ** 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * fan_in + 1.0)
                sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
                m.weight.copy_(sign * (torch.rand(n, generator=g) + 0.5))
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()

"""Small fully-connected BNNs in Brevitas: the default job's network and the test ladder's.

    pixels in [0, 1] -> 8-bit unsigned input quantizer (the accelerator's uint8 input)
    -> [QuantLinear (binary or 2-bit weights) -> BatchNorm1d -> sign / 2-bit activation] x hidden
    -> QuantLinear -> BatchNorm1d (its exact affine runs on the host)

The quantizers are those of FINN's BNN-PYNQ models (`brevitas_examples.bnn_pynq`): constant
scale 1, narrow range, so weights are {-1, +1} (1 bit) or {-1, 0, +1} (2 bits).
"""

from __future__ import annotations

import torch
from brevitas.core.scaling import ScalingImplType
from brevitas.nn import QuantIdentity, QuantLinear
from brevitas.quant import Uint8ActPerTensorFloat
from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
from torch import nn


class PixelQuant(Uint8ActPerTensorFloat):
    """Inputs in [0, 1] to uint8 levels with the constant, power-of-two scale 1/256.

    A power-of-two scale keeps the exported model's float arithmetic exact (every product and
    partial sum of the first layer is a multiple of 2^-8 well inside float32's mantissa), so the
    accelerator's integer datapath agrees with the float model bit for bit, also where an
    accumulator lands exactly on a threshold. (With 1/255 the float model itself rounds.)
    """

    scaling_impl_type = ScalingImplType.CONST
    scaling_init = 255 / 256
    max_val = 255 / 256


class BnnMlp(nn.Module):
    """A BNN MLP with `hidden` widths, `weight_bits` and `act_bits` in {1, 2}."""

    def __init__(self, in_features: int = 784, hidden: tuple[int, ...] = (64, 64), classes: int = 10,
                 weight_bits: int = 1, act_bits: int = 1) -> None:
        super().__init__()
        self.input_quant = QuantIdentity(act_quant=PixelQuant, return_quant_tensor=False)
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [
                QuantLinear(width, h, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=weight_bits),
                nn.BatchNorm1d(h),
                QuantIdentity(act_quant=CommonActQuant, bit_width=act_bits),
            ]
            width = h
        layers += [QuantLinear(width, classes, bias=False, weight_quant=CommonWeightQuant,
                               weight_bit_width=weight_bits), nn.BatchNorm1d(classes)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x.reshape(x.shape[0], -1))
        return self.layers(x)


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics that put thresholds inside the accumulator range,
    with some negative BatchNorm scales (falling activations): the test ladder's networks."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, QuantLinear):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 2 - 1)
            elif isinstance(m, nn.BatchNorm1d):
                n = m.num_features
                fan_in = next(l for l in model.modules() if isinstance(l, QuantLinear) and l.out_features == n).in_features
                m.running_mean.copy_((torch.rand(n, generator=g) - 0.5) * fan_in ** 0.5 * 2)
                m.running_var.copy_(torch.rand(n, generator=g) * fan_in + 1.0)
                sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
                m.weight.copy_(sign * (torch.rand(n, generator=g) + 0.5))
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()

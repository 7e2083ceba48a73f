"""FINN's BNN-PYNQ CNV for CIFAR-10 (binary weights and activations), as shipped in
`brevitas_examples`, a variant with padded convolutions, and deterministic random parameters.

    images (N, 3, 32, 32) in [0, 1] -> 2x - 1 -> 8-bit input quantizer (Q1.7, scale 2^-7)
    -> [3x3 conv -> BatchNorm2d -> sign] 64, 64, maxpool 2, 128, 128, maxpool 2, 256, 256
    -> flatten -> [FC -> BatchNorm1d -> sign] 512, 512 -> FC 10 -> TensorNorm (one scalar affine)

Without padding the feature maps are 32 -> 30 -> 28 -> 14 -> 12 -> 10 -> 5 -> 3 -> 1, so the first
FC takes 256 features. With padding 1 (`cnv_w1a1_padded`) they stay 32, 32, 16, 16, 8, 8 and the
first FC takes 256 * 8 * 8 = 16,384 features. Brevitas pads with zeros, which after a sign
activation is not a bipolar value: a padded position contributes 0 to a binary conv's sum.
"""

from __future__ import annotations

import warnings

import torch
from brevitas.core.restrict_val import RestrictValueType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
from torch import nn

#: (out channels, max-pool after) of the six convolutions, as in brevitas_examples' CNV.
CNV_CONVS = ((64, False), (64, True), (128, False), (128, True), (256, False), (256, False))
CNV_FCS = (512, 512)


def cnv_w1a1() -> nn.Module:
    """BNN-PYNQ CNV-W1A1 from `brevitas_examples.bnn_pynq` (untrained; Brevitas' init: weights
    uniform(-1, 1), BatchNorm identity, TensorNorm identity)."""
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = model_with_cfg("CNV_1W1A", pretrained=False)
    return model


class CnvPadded(nn.Module):
    """CNV-W1A1 with padding 1 on every 3x3 convolution; module layout and forward as in
    `brevitas_examples.bnn_pynq.models.CNV` (`conv_features`, `linear_features`)."""

    def __init__(self, num_classes: int = 10, in_ch: int = 3, image_size: int = 32,
                 weight_bits: int = 1, act_bits: int = 1, in_bits: int = 8) -> None:
        super().__init__()
        self.conv_features = nn.ModuleList([QuantIdentity(  # Q1.7 input, as in CNV
            act_quant=CommonActQuant, bit_width=in_bits, min_val=-1.0, max_val=1.0 - 2.0 ** -7,
            narrow_range=False, restrict_scaling_type=RestrictValueType.POWER_OF_TWO)])
        size = image_size
        for out_ch, pool in CNV_CONVS:
            self.conv_features.extend([
                QuantConv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False,
                            weight_quant=CommonWeightQuant, weight_bit_width=weight_bits),
                nn.BatchNorm2d(out_ch, eps=1e-4),
                QuantIdentity(act_quant=CommonActQuant, bit_width=act_bits),
            ])
            if pool:
                self.conv_features.append(nn.MaxPool2d(kernel_size=2))
                size //= 2
            in_ch = out_ch
        self.linear_features = nn.ModuleList()
        width = in_ch * size * size
        for out_features in CNV_FCS:
            self.linear_features.extend([
                QuantLinear(width, out_features, bias=False, weight_quant=CommonWeightQuant,
                            weight_bit_width=weight_bits),
                nn.BatchNorm1d(out_features, eps=1e-4),
                QuantIdentity(act_quant=CommonActQuant, bit_width=act_bits),
            ])
            width = out_features
        self.linear_features.extend([
            QuantLinear(width, num_classes, bias=False, weight_quant=CommonWeightQuant,
                        weight_bit_width=weight_bits),
            TensorNorm(),
        ])
        for m in self.modules():
            if isinstance(m, (QuantConv2d, QuantLinear)):
                nn.init.uniform_(m.weight.data, -1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = 2.0 * x - torch.tensor([1.0], device=x.device)
        for mod in self.conv_features:
            x = mod(x)
        x = x.view(x.shape[0], -1)
        for mod in self.linear_features:
            x = mod(x)
        return x


def cnv_w1a1_padded() -> nn.Module:
    """CNV-W1A1 with padding 1 on every convolution (first FC: 16,384 inputs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CnvPadded()


def cifar_like_images(n: int, generator: torch.Generator, size: int = 32) -> torch.Tensor:
    """`n` smooth random RGB images in [0, 1], (n, 3, size, size): coarse 4x4 colour fields
    upsampled, plus pixel noise, so that neighbouring pixels correlate as in photographs."""
    coarse = torch.rand(n, 3, 4, 4, generator=generator)
    smooth = nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    noise = (torch.rand(n, 3, size, size, generator=generator) - 0.5) * 0.2
    return (smooth + noise).clamp(0.0, 1.0)


def with_fixed_batchnorm_statistics(model: nn.Module, seed: int, calibration_images: int = 64) -> nn.Module:
    """Random parameters, deterministic from `seed`, that keep every sign activation balanced.

    Weights of convolutions and FCs: uniform(-1, 1) (Brevitas' CNV init). BatchNorm affine: scales
    of magnitude 0.5..1.5, one in five negative (falling channels), biases within +-0.25 of the
    scale. Running statistics: the batch statistics of one forward pass over
    `calibration_images` CIFAR-like images (`cifar_like_images`), each layer seeing the normalized
    output of the layers before it, so every channel is about half +1, half -1 on such inputs.
    TensorNorm gets the statistics of the logits. Returns the model in eval mode.
    """
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, TensorNorm))]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (QuantConv2d, QuantLinear)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 2 - 1)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
                scale = torch.rand(n, generator=g) + 0.5
                m.weight.copy_(sign * scale)
                m.bias.copy_((torch.rand(n, generator=g) - 0.5) * 0.5 * scale)
        images = cifar_like_images(calibration_images, g)
        saved = {m: m.momentum for m in norms}
        for m in norms:
            if isinstance(m, TensorNorm):
                m.momentum = 1.0  # running = batch statistics
            else:
                m.momentum = None  # cumulative average: after one batch, the batch statistics
                m.reset_running_stats()
        model.train()
        model(images)
        for m, momentum in saved.items():
            m.momentum = momentum
    return model.eval()

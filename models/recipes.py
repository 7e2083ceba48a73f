"""How each family's paper trains its binary network, as data: `hwgen train --recipe NAME`, the
family's own recipe by default.

    reactnet   Adam, lr 5e-3 decaying linearly to 0, no weight decay; two steps (1: binary
               activations, real-valued weights; 2: both binary, from step 1's weights, the
               schedule restarted); the distributional loss: KL divergence from a real-valued
               teacher's softmax to the network's (models/teacher.py)
    bireal     Adam, lr 5e-3 linear; ApproxSign: sign's gradient is the piecewise polynomial's,
               2 - 2|x| on |x| < 1; magnitude-aware weights: a binary convolution computes with
               mean(|W|) sign(W) per output channel, so W's gradient carries its magnitude; the
               first half of the run pre-trains the real-valued network (clip(x, -1, 1) for
               sign, real weights) as the binary one's initialisation (the schedule restarted)
    ste        BinaryDenseNet: from scratch, Adam, lr 5e-3 linear, the plain straight-through
               estimator, no scaling factors
    abcnet     ABC-Net: weight bases initialised from real weights' mean and standard deviation
               (`ABCConv.init_from_real`), learnable shifts of the activation bases; Adam, linear
    bnn-pynq   FINN's TFC/SFC/LFC/CNV (brevitas_examples.bnn_pynq): Adam, lr 0.02, batch 100,
               squared hinge loss, the learning rate halved every 40 epochs, latent binary weights
               clipped to [-1, 1] after every step

What a recipe changes in training never reaches the export: ApproxSign and the magnitude factor
are hooks that leave the forward function unchanged or are undone by the following BatchNorm in
training mode (which normalizes a per-channel positive scale away), and they are removed before
BatchNorm's statistics are re-estimated, before every evaluation and before the export.

The switches `rsign` and `rprelu` (ReActNet's learnable shifts; off: plain sign and PReLU, shifts
fixed at zero), `distillation`, `two_step` and `pretrain` exist for the ablation
(benchmarks/bench_train.py); `--without` turns them off, `--with` on (the distributional loss in
another family's recipe, say).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from hwgen.errors import HwgenError


@dataclass(frozen=True)
class Recipe:
    name: str
    lr: float
    batch_size: int
    schedule: str = "linear"  # "linear": to 0 over the run (each step of two); "halve-40": x 0.5 every 40 epochs
    loss: str = "cross-entropy"  # or "squared-hinge" (targets +-1)
    sign_gradient: str = "ste"  # Brevitas' clipped straight-through estimator, or "approx-sign"
    magnitude_aware: bool = False
    two_step: bool = False
    pretrain: bool = False  # Bi-Real's real-valued clip-activation pre-training, the first half of the run
    distillation: bool = False
    clip_weights: bool = False
    abc_init: bool = False
    rsign: bool = True
    rprelu: bool = True


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("reactnet", lr=5e-3, batch_size=64, two_step=True, distillation=True),
    Recipe("bireal", lr=5e-3, batch_size=64, sign_gradient="approx-sign", magnitude_aware=True, pretrain=True),
    Recipe("ste", lr=5e-3, batch_size=64),
    Recipe("abcnet", lr=5e-3, batch_size=64, abc_init=True),
    Recipe("bnn-pynq", lr=0.02, batch_size=100, schedule="halve-40", loss="squared-hinge", clip_weights=True),
)}

#: the paper's recipe of each zoo family
FAMILY_RECIPE = {"ReActNet": "reactnet", "Bi-Real Net": "bireal", "BinaryDenseNet": "ste", "ABC-Net": "abcnet"}
#: switches that `--without` turns off
SWITCHES = ("rsign", "rprelu", "distillation", "two-step", "pretrain")


def recipe(name: str | None, family: str, without: tuple[str, ...] = (), adding: tuple[str, ...] = ()) -> Recipe:
    """The recipe `name` (the family's own when None) with the switches in `without` off and
    those in `adding` on."""
    chosen = name if name is not None else FAMILY_RECIPE.get(family, "bnn-pynq")
    if chosen not in RECIPES:
        raise HwgenError(f"is not a recipe: one of {', '.join(RECIPES)}", where=f"--recipe {chosen}")
    r = RECIPES[chosen]
    for option, switches, on in (("--without", without, False), ("--with", adding, True)):
        for switch in switches:
            if switch not in SWITCHES:
                raise HwgenError(f"is not a switch: one of {', '.join(SWITCHES)}", where=f"{option} {switch}")
            r = replace(r, **{switch.replace("-", "_"): on})
    return r


def lr_factor(r: Recipe, step: int, total: int, steps_per_epoch: int) -> float:
    """The learning rate at optimiser step `step` of `total`, relative to the initial one."""
    if r.schedule == "halve-40":
        return 0.5 ** ((step // max(1, steps_per_epoch)) // 40)
    if r.two_step or r.pretrain:
        first = total // 2
        step, total = (step, first) if step < first else (step - first, total - first)
    return max(0.0, 1.0 - step / max(1, total))


def in_first_step(r: Recipe, step: int, total: int) -> bool:
    """Whether optimiser step `step` belongs to the first half of two-step training or of
    pre-training then training."""
    return (r.two_step or r.pretrain) and step < total // 2


# --------------------------------------------------------------------------- the model's side

def binary_weight_layers(model: nn.Module) -> list[nn.Module]:
    """Brevitas convolutions and linear layers with 1-bit weights, found while their weight
    quantizers are on (a disabled one has no bit width): the trainer lists them once."""
    layers = []
    for m in model.modules():
        quant = getattr(m, "weight_quant", None)
        if quant is not None and hasattr(quant, "bit_width"):
            try:
                bits = int(quant.bit_width())
            except Exception:  # a proxy without a bit width
                continue
            if bits == 1:
                layers.append(m)
    return layers


def sign_quantizers(model: nn.Module) -> list[nn.Module]:
    """The binary activation quantizers (QuantIdentity of bit width 1)."""
    from brevitas.nn import QuantIdentity

    return [m for m in model.modules() if isinstance(m, QuantIdentity) and int(m.act_quant.bit_width()) == 1]


def prepare(r: Recipe, model: nn.Module, seed: int) -> None:
    """What a recipe does to a network before its first step: ABC-Net's initialisation; for
    switched-off RSign/RPReLU, shifts fixed at zero."""
    from hwgen.models.abcnet import ABCConv
    from hwgen.models.blocks import RPReLU, RSign

    if r.abc_init:
        g = torch.Generator().manual_seed(seed)
        for m in model.modules():
            if isinstance(m, ABCConv):
                real = torch.randn(m.latent.shape[1:], generator=g) * (2.0 / m.latent[0, 0].numel()) ** 0.5
                m.init_from_real(real)
    for m in model.modules():
        frozen = (isinstance(m, RSign) and not r.rsign) or (isinstance(m, RPReLU) and not r.rprelu)
        if frozen:
            for p in m.parameters():
                if p.dim() == 4:  # the LearnableBias shifts, not PReLU's slopes
                    nn.init.zeros_(p)
                    p.requires_grad_(False)


class _ApproxSignGradient(torch.autograd.Function):
    """Identity forward; backward multiplies by 2 - 2|x| (0 outside |x| < 1). Before Brevitas'
    clipped straight-through sign this makes sign's gradient Bi-Real Net's ApproxSign."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


class TrainingHooks:
    """The recipe's training-only changes to `model` (whose binary layers are `binary`), on while
    `with hooks:` is open."""

    def __init__(self, r: Recipe, model: nn.Module, binary: list[nn.Module]) -> None:
        self.recipe, self.model, self.binary = r, model, binary
        self._handles: list = []

    def __enter__(self) -> "TrainingHooks":
        r = self.recipe
        if r.sign_gradient == "approx-sign":
            for q in sign_quantizers(self.model):
                self._handles.append(q.register_forward_pre_hook(lambda _m, args: (_ApproxSignGradient.apply(args[0]),)))
        if r.magnitude_aware:
            for layer in self.binary:
                self._handles.append(layer.register_forward_hook(_magnitude))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _magnitude(layer: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor:
    """The output of a binary layer times mean(|W|) of each output channel's latent weights."""
    w = layer.weight
    alpha = w.abs().reshape(w.shape[0], -1).mean(1)
    return output * alpha.view(1, -1, *([1] * (output.dim() - 2)))


def set_real_weights(binary: list[nn.Module], real: bool) -> None:
    """Two-step training's step 1: the binary layers compute with their latent real weights."""
    for layer in binary:
        layer.weight_quant.disable_quant = real


class ClipActivations:
    """Pre-training's activations: every sign quantizer outputs clip(x, -1, 1) instead, while on."""

    def __init__(self, model: nn.Module) -> None:
        self.quantizers = sign_quantizers(model)
        self._handles: list = []

    def set(self, on: bool) -> None:
        if on and not self._handles:
            self._handles = [q.register_forward_hook(lambda _m, args, _out: torch.clamp(args[0], -1.0, 1.0))
                             for q in self.quantizers]
        elif not on:
            for h in self._handles:
                h.remove()
            self._handles = []


def clip_latent_weights(binary: list[nn.Module]) -> None:
    """bnn_pynq's clip_weights(-1, 1) on every binary layer's latent weights."""
    with torch.no_grad():
        for layer in binary:
            layer.weight.clamp_(-1.0, 1.0)


def loss(r: Recipe, logits: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None) -> torch.Tensor:
    """The recipe's loss on a batch: the distributional loss where there is a teacher (the
    cross-entropy to its softmax, which is KL(teacher || network) up to the teacher's constant
    entropy), else cross-entropy or bnn_pynq's squared hinge on +-1 targets."""
    if teacher_logits is not None:
        return -(torch.softmax(teacher_logits, 1) * torch.log_softmax(logits, 1)).sum(1).mean()
    if r.loss == "squared-hinge":
        target = torch.full_like(logits, -1.0).scatter_(1, y[:, None], 1.0)
        return torch.clamp(1.0 - logits * target, min=0.0).pow(2).mean()
    return nn.functional.cross_entropy(logits, y)

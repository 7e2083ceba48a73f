"""The model zoo: every network hwgen compiles, by name, in an ImageNet and a small config.

    reactnet-a, bireal-18, bireal-34, binarydensenet-28, binarydensenet-37,
    abcnet-18-m1n1, abcnet-18-m3n3, abcnet-18-m5n5                 (224 x 224 x 3 / 32 x 32 x 3)
    tfc, sfc, lfc (MNIST 28 x 28), cnv (CIFAR-10 32 x 32)          (FINN's BNN-PYNQ networks)

A zoo network comes with random parameters "as after training" unless a checkpoint is given:
binary weights uniform in [-1, 1], PReLU slopes and RSign/RPReLU shifts drawn as `randomize_block`
draws them, then every BatchNorm's running statistics measured on random images (the layer's
real input distribution, as training leaves them) and its affine parameters drawn with a fifth of
the channels falling. `hwgen zoo list` and `hwgen zoo export` are this module's command line.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

import hwgen
from hwgen.errors import HwgenError

SIZES = ("small", "imagenet")
#: the small configs' default input (channels, height, width); MNIST-style data gives (1, 28, 28)
CIFAR_IMAGE = (3, 32, 32)
MNIST_IMAGE = (1, 28, 28)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: str
    make: Callable[[str, tuple[int, int, int]], nn.Module]  # (size, small config's image) -> untrained network
    sizes: tuple[str, ...] = SIZES
    paper: str = ""
    default_image: tuple[int, int, int] = CIFAR_IMAGE

    def input_shape(self, size: str, image: tuple[int, int, int] | None = None) -> tuple[int, ...]:
        return tuple(self.make(size, image or self.default_image).input_shape)


def _reactnet(size: str, image: tuple[int, int, int]) -> nn.Module:
    from hwgen.models.reactnet import ReActNetA
    return ReActNetA(size, image)


def _bireal(depth: int) -> Callable[[str], nn.Module]:
    def make(size: str, image: tuple[int, int, int]) -> nn.Module:
        from hwgen.models.bireal import BiRealNet
        return BiRealNet(depth, size, image)
    return make


def _densenet(depth: int) -> Callable[[str], nn.Module]:
    def make(size: str, image: tuple[int, int, int]) -> nn.Module:
        from hwgen.models.densenet import BinaryDenseNet
        return BinaryDenseNet(depth, size, image)
    return make


def _abcnet(m: int, n: int) -> Callable[[str], nn.Module]:
    def make(size: str, image: tuple[int, int, int]) -> nn.Module:
        from hwgen.models.abcnet import ABCNet
        return ABCNet(m, n, size, image)
    return make


def _bnn_pynq(name: str, shape: tuple[int, ...]) -> Callable[[str], nn.Module]:
    def make(size: str, image: tuple[int, int, int]) -> nn.Module:
        if (1, *image) != shape:
            raise HwgenError(f"takes inputs of shape {shape[1:]}, not {image}", where=f"network {name}")
        if name == "CNV_1W1A":
            from hwgen.models.cnv import cnv_w1a1
            model = cnv_w1a1()
        else:
            from hwgen.models.bnn_pynq import bnn_pynq_model
            model = bnn_pynq_model(name)
        model.input_shape = shape
        return model
    return make


ZOO: dict[str, ZooEntry] = {e.name: e for e in [
    ZooEntry("reactnet-a", "ReActNet", _reactnet, paper="Liu et al., ECCV 2020"),
    ZooEntry("bireal-18", "Bi-Real Net", _bireal(18), paper="Liu et al., ECCV 2018"),
    ZooEntry("bireal-34", "Bi-Real Net", _bireal(34), paper="Liu et al., ECCV 2018"),
    ZooEntry("binarydensenet-28", "BinaryDenseNet", _densenet(28), paper="Bethge et al., 2019"),
    ZooEntry("binarydensenet-37", "BinaryDenseNet", _densenet(37), paper="Bethge et al., 2019"),
    ZooEntry("abcnet-18-m1n1", "ABC-Net", _abcnet(1, 1), paper="Lin et al., NeurIPS 2017"),
    ZooEntry("abcnet-18-m3n3", "ABC-Net", _abcnet(3, 3), paper="Lin et al., NeurIPS 2017"),
    ZooEntry("abcnet-18-m5n5", "ABC-Net", _abcnet(5, 5), paper="Lin et al., NeurIPS 2017"),
    ZooEntry("tfc", "FINN BNN-PYNQ", _bnn_pynq("TFC_1W1A", (1, 1, 28, 28)), ("small",), default_image=MNIST_IMAGE),
    ZooEntry("sfc", "FINN BNN-PYNQ", _bnn_pynq("SFC_1W1A", (1, 1, 28, 28)), ("small",), default_image=MNIST_IMAGE),
    ZooEntry("lfc", "FINN BNN-PYNQ", _bnn_pynq("LFC_1W1A", (1, 1, 28, 28)), ("small",), default_image=MNIST_IMAGE),
    ZooEntry("cnv", "FINN BNN-PYNQ", _bnn_pynq("CNV_1W1A", (1, 3, 32, 32)), ("small",)),
]}


def entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise HwgenError(f"no such network in the zoo (it has {', '.join(ZOO)})", where=f"zoo name '{name}'")
    return ZOO[name]


def network(name: str, size: str = "small", seed: int = 0, checkpoint: str | Path | None = None,
            image: tuple[int, int, int] | None = None) -> nn.Module:
    """The zoo's `name` at `size`, in eval mode: a checkpoint's parameters, or random ones "as after
    training"; a small config on inputs of `image` (channels, height, width; default: the network's own)."""
    model = untrained(name, size, seed, image)
    if checkpoint is not None:
        load_parameters(model, checkpoint)
        return model.eval()
    return randomize(model, seed)


def untrained(name: str, size: str = "small", seed: int = 0, image: tuple[int, int, int] | None = None) -> nn.Module:
    """The zoo's `name` at `size` with PyTorch's and Brevitas' initial parameters (what training
    starts from: BatchNorm at identity, shifts at zero), drawn from `seed`."""
    e = entry(name)
    if size not in e.sizes:
        raise HwgenError(f"comes in {', '.join(e.sizes)}, not {size}", where=f"zoo network {name}")
    # construction draws default initial values from torch's global generator (a classifier's
    # bias): seeded in a fork of it, so the same seed gives the same network, and the caller's
    # generator is left as it was
    with warnings.catch_warnings(), torch.random.fork_rng():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        return e.make(size, tuple(image) if image is not None else e.default_image)


def export(name: str, path: str | Path, size: str = "small", seed: int = 0,
           checkpoint: str | Path | None = None) -> Path:
    """The zoo's `name` as a QONNX file at `path`, ready for `hwgen build`. Written atomically:
    a failed export leaves no file, and an earlier one at `path` as it was."""
    model = network(name, size, seed, checkpoint)
    path = Path(path)
    if path.suffix != ".onnx":
        raise HwgenError("the exported model's file name must end in .onnx", where=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        hwgen.export(model).save(str(partial))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def listing() -> list[dict]:
    """One row per (network, size): name, family, size, parameters, binary MACs per frame, input shape."""
    rows = []
    for e in ZOO.values():
        for size in e.sizes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = e.make(size, e.default_image).eval()
                rows.append({"name": e.name, "family": e.family, "size": size, "parameters": parameters(model),
                             "binary_macs": binary_macs(model), "input_shape": list(model.input_shape),
                             "paper": e.paper})
    return rows


def load_parameters(model: nn.Module, checkpoint: str | Path) -> None:
    path = Path(checkpoint)
    if not path.is_file():
        raise HwgenError("no such checkpoint", where=str(path))
    try:  # weights_only: a checkpoint is data; unpickling it must never run code from the file
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HwgenError(f"not a checkpoint of plain tensors ({type(exc).__name__})", where=str(path)) from None
    if isinstance(state, dict):  # a state_dict, or a checkpoint of `hwgen train` (its "model")
        state = state.get("model", state.get("state_dict", state))
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HwgenError(f"does not fit the network ({first[:200]})", where=str(path)) from None


def randomize(model: nn.Module, seed: int, calibration_batches: int = 2, batch: int = 8) -> nn.Module:
    """Random parameters "as after training": `randomize_block` for the binary layers and the
    ReActNet shifts and slopes, the full-precision layers' weights scaled to keep their input's
    spread, then BatchNorm statistics measured on random images in train mode and random affine
    parameters (a fifth of the channels falling). Returns the model in eval mode."""
    from hwgen.models.blocks import randomize_block

    randomize_block(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():  # layers that know how they are initialised (ABC-Net's bases)
        if hasattr(m, "randomize_"):
            m.randomize_(g)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and getattr(m, "weight_quant", None) is not None \
                    and int(m.weight_quant.bit_width()) > 1:
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in ** 0.5)
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over the calibration batches
        model.train()
        shape = tuple(model.input_shape[1:])
        for _ in range(calibration_batches):
            model(torch.rand((batch, *shape), generator=g))
        for bn in norms:
            n = bn.num_features
            sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
            bn.weight.copy_(sign * (torch.rand(n, generator=g) + 0.5))
            bn.bias.copy_((torch.rand(n, generator=g) - 0.5) * 0.5)
            bn.momentum = 0.1
    return model.eval()


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def binary_macs(model: nn.Module) -> int:
    """Multiply-accumulates per frame of the layers whose weights are 1-bit; an ABC-Net
    convolution counts M x N binary convolutions (one per pair of weight and activation bases)."""
    from hwgen.models.abcnet import ABCConv

    total = 0

    def hook(module, inputs, output) -> None:
        nonlocal total
        if isinstance(module, ABCConv):
            per_output = module.latent[0, 0].numel() * module.latent.shape[0] * module.activations.beta.numel()
        else:
            per_output = module.weight[0].numel()
        total += int(output[0].numel()) * per_output

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, ABCConv) or (isinstance(m, (nn.Conv2d, nn.Linear))
                                           and getattr(m, "weight_quant", None) is not None
                                           and int(m.weight_quant.bit_width()) == 1)]
    try:
        with torch.no_grad():
            model.eval()(torch.rand((1, *model.input_shape[1:])))
    finally:
        for h in hooks:
            h.remove()
    return total

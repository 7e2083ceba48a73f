"""FINN's BNN-PYNQ networks (TFC, SFC, LFC, CNV) as shipped in `brevitas_examples`, and loading
their pretrained checkpoints.

The checkpoints' last module is a `TensorNorm`; they load with `strict=True` once it is replaced by
`BatchNorm1d(10)` (that is how they were saved).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from hwgen.errors import HwgenError


def bnn_pynq_model(name: str) -> nn.Module:
    """An untrained BNN-PYNQ network, e.g. 'TFC_1W1A', with the final TensorNorm as BatchNorm1d."""
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = model_with_cfg(name.upper(), pretrained=False)
    if name.upper().startswith(("TFC", "SFC", "LFC")):
        model.features[-1] = nn.BatchNorm1d(10)
    return model


def load_checkpoint(name: str, path: str | Path) -> nn.Module:
    """A BNN-PYNQ network with a pretrained checkpoint (torch pickle with `state_dict`), eval mode."""
    path = Path(path)
    if not path.exists():
        raise HwgenError("no such checkpoint", where=str(path))
    model = bnn_pynq_model(name)
    # weights_only: a checkpoint is data; unpickling it must never run code from the file
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError (and others) for anything but plain tensors
        raise HwgenError(f"not a checkpoint of plain tensors ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120]})", where=str(path)) from None
    model.load_state_dict(state["state_dict"], strict=True)
    return model.eval()

"""The real-valued teacher of ReActNet's distributional loss: a small float CNN trained first on
the same data, or read from `--teacher FILE` (a `teacher.pt` an earlier run wrote).

    image -> [3x3 conv -> BN -> ReLU] x 2 (W) -> 2x2 max pool -> [3x3 conv -> BN -> ReLU] x 2 (2W)
          -> 2x2 max pool -> 3x3 conv -> BN -> ReLU (4W) -> global average pool -> linear -> logits

It is never exported: only its softmax reaches the binary network's loss. Its training draws from
its own generator (seeded by the run's seed), so a run and its resumption use the same teacher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from hwgen.errors import HwgenError

WIDTH = 32
EPOCHS = 5
LR = 3e-3
BATCH = 64
TEACHER = "teacher.pt"


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class Teacher(nn.Sequential):
    def __init__(self, channels: int, classes: int, width: int = WIDTH) -> None:
        w = width
        super().__init__(*_conv(channels, w), *_conv(w, w), nn.MaxPool2d(2), *_conv(w, 2 * w), *_conv(2 * w, 2 * w),
                         nn.MaxPool2d(2), *_conv(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4 * w, classes))
        self.channels, self.classes = channels, classes


def train_teacher(x: np.ndarray, y: np.ndarray, classes: int, seed: int, device: torch.device,
                  augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> Teacher:
    """A teacher trained on (x, y): Adam, the learning rate decaying linearly to 0 over EPOCHS."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        teacher = Teacher(x.shape[1], classes).to(device).train()
    g = torch.Generator().manual_seed(seed + 1)
    steps = EPOCHS * (len(x) // BATCH)
    optimizer = torch.optim.Adam(teacher.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / max(1, steps)))
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(EPOCHS):
        order = torch.randperm(len(xs), generator=g)
        for i in range(len(x) // BATCH):
            idx = order[i * BATCH:(i + 1) * BATCH]
            batch = augment(xs[idx], g) if augment is not None else xs[idx]
            optimizer.zero_grad()
            nn.functional.cross_entropy(teacher(batch.to(device)), ys[idx].to(device)).backward()
            optimizer.step()
            schedule.step()
    return teacher.eval()


def save_teacher(teacher: Teacher, path: Path) -> None:
    """The teacher as `load_teacher` reads it (the trainer writes it atomically)."""
    torch.save({"channels": teacher.channels, "classes": teacher.classes, "model": teacher.state_dict()}, path)


def load_teacher(path: Path, channels: int, classes: int, device: torch.device) -> Teacher:
    """The teacher in `path`, checked against the data: a clear error for anything else."""
    if not path.is_file():
        raise HwgenError("no such teacher", where=f"--teacher {path}")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        teacher = Teacher(int(saved["channels"]), int(saved["classes"]))
        teacher.load_state_dict(saved["model"])
    except Exception as exc:
        raise HwgenError(f"is not a teacher that hwgen train wrote ({type(exc).__name__})", where=f"--teacher {path}") from None
    if (teacher.channels, teacher.classes) != (channels, classes):
        raise HwgenError(f"takes {teacher.channels}-channel images to {teacher.classes} classes, the data is "
                         f"{channels}-channel with {classes}", where=f"--teacher {path}")
    return teacher.to(device).eval()

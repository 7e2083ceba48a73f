"""`hwgen train`: a zoo network trained in Brevitas on real data, resumable, straight into the build.

    hwgen train NAME [--size small] [--data mnist5k|DIR] [--epochs N] ... -o DIR
        DIR/checkpoint.pt   every epoch: model, optimiser, scheduler, RNG state, step, epoch
        DIR/metrics.json    per epoch: loss, train and test accuracy, seconds, images/s
        DIR/model.onnx      at the end: QONNX of the trained network, ready for `hwgen build`

The recipe is the straight-through estimator that Brevitas' binary quantizers provide, Adam with a
linear learning-rate decay to zero over the run and no weight decay (binary weights have no
magnitude to decay). A small config takes the data set's image shape (1 x 28 x 28 for MNIST).

A run is a function of its configuration: the network's initial parameters come from `seed`, and
every random draw of training (the order of the images, the augmentation) from one generator whose
state the checkpoint keeps, so `--resume` after epoch k continues exactly as the uninterrupted run
would have (a test holds that). Files are replaced atomically: a run stopped at any point leaves
the previous epoch's checkpoint and metrics whole.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from hwgen.errors import HwgenError
from hwgen.report import write_json_atomically
from hwgen.models.datasets import Dataset, augment, load
from hwgen.models.zoo import entry, untrained

CHECKPOINT, METRICS, MODEL = "checkpoint.pt", "metrics.json", "model.onnx"
RECIPE = "ste-adam-linear"
#: test-set images evaluated per forward pass
EVAL_BATCH = 1000


@dataclass(frozen=True)
class TrainConfig:
    network: str
    output: Path
    size: str = "small"
    data: str = "mnist5k"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps (a short run, a smoke test)
    resume: bool = False
    threads: int | None = None  # torch intra-op threads; None: torch's default

    def check(self) -> None:
        entry(self.network)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HwgenError(f"must be a positive integer, not {value!r}", where=f"--{name.replace('_', '-')}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise HwgenError(f"must be a positive integer, not {self.max_steps!r}", where="--max-steps")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise HwgenError(f"must be a positive number, not {self.lr!r}", where="--lr")
        if self.output.exists() and not self.output.is_dir():
            raise HwgenError("exists and is not a folder", where=str(self.output))


@dataclass
class EpochMetrics:
    epoch: int
    steps: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float
    images_per_second: float


@dataclass
class RunState:
    """What a checkpoint restores besides the network and the optimiser."""

    epoch: int = 0  # epochs finished
    step: int = 0  # optimiser steps taken
    history: list[EpochMetrics] = field(default_factory=list)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    was = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), EVAL_BATCH):
            correct += int((model(torch.from_numpy(x[i:i + EVAL_BATCH])).argmax(1).numpy() == y[i:i + EVAL_BATCH]).sum())
    model.train(was)
    return correct / max(1, len(x))


class Trainer:
    """One training run of `config` on `data` (loaded from `config.data` if not given)."""

    def __init__(self, config: TrainConfig, data: Dataset | None = None, log: Callable[[str], None] = print) -> None:
        config.check()
        self.config, self.log = config, log
        self.data = data if data is not None else load(config.data)
        if config.size == "imagenet" and self.data.image != (3, 224, 224):
            raise HwgenError(f"the ImageNet config takes 3 x 224 x 224 images, the data has {self.data.image}",
                             where=f"--data {config.data}")
        torch.manual_seed(config.seed)
        self.model = untrained(config.network, config.size, config.seed, image=self.data.image).train()
        if self.data.classes > _classes(self.model):
            raise HwgenError(f"the data has {self.data.classes} classes, the network {_classes(self.model)}",
                             where=f"--data {config.data}")
        self.steps_per_epoch = len(self.data.x_train) // config.batch_size
        if self.steps_per_epoch == 0:
            raise HwgenError(f"is larger than the {len(self.data.x_train)} training images", where="--batch-size")
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        total = self.total_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: max(0.0, 1.0 - s / total))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.state = RunState()
        if config.resume:
            self._restore()

    # -- checkpoints

    def _checkpoint(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(), "epoch": self.state.epoch, "step": self.state.step,
                "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.config).items()},
                "history": [asdict(m) for m in self.state.history]}

    def _restore(self) -> None:
        path = self.config.output / CHECKPOINT
        if not path.is_file():
            raise HwgenError(f"nothing to resume: no {CHECKPOINT}", where=str(self.config.output))
        try:  # weights_only: a checkpoint is data; loading it must never run code from the file
            saved = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
            epoch, step, history = int(saved["epoch"]), int(saved["step"]), saved["history"]
            before = saved["config"]
        except Exception as exc:  # torch's unpickler, a missing key, a state of another network
            raise HwgenError(f"is not a checkpoint of this run ({type(exc).__name__}: {str(exc)[:120]})",
                             where=str(path)) from None
        for key in ("network", "size", "data", "batch_size", "lr", "seed", "epochs"):
            if before.get(key) != getattr(self.config, key):
                raise HwgenError(f"was written with {key} = {before.get(key)!r}, not {getattr(self.config, key)!r}: "
                                 "resume with the same settings", where=str(path))
        self.state = RunState(epoch, step, [EpochMetrics(**m) for m in history])

    def _save(self) -> None:
        out = self.config.output
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / CHECKPOINT, lambda p: torch.save(self._checkpoint(), p))
        write_json_atomically(out / METRICS, self.metrics())

    def metrics(self) -> dict:
        d = self.data
        return {"network": self.config.network, "size": self.config.size, "data": d.name, "recipe": RECIPE,
                "image": list(d.image), "train_images": len(d.x_train), "test_images": len(d.x_test),
                "test_source": d.test_source, "batch_size": self.config.batch_size, "lr": self.config.lr,
                "seed": self.config.seed, "steps": self.state.step,
                "epochs": [asdict(m) for m in self.state.history]}

    # -- training

    def run(self, progress: Callable[[int, int, float, float, float], None] | None = None,
            until_epoch: int | None = None) -> dict:
        """Train the epochs not yet done (all of them, unless resumed), checkpointing after each;
        export the network; return the metrics. `progress(epoch, step_in_epoch, loss, accuracy,
        images_per_second)` is called after every step. `until_epoch` stops after that epoch, as
        an interrupted run would (no export), to be resumed."""
        cfg, d = self.config, self.data
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        x_all, y_all = torch.from_numpy(d.x_train), torch.from_numpy(d.y_train)
        loss_fn = nn.CrossEntropyLoss()
        last = cfg.epochs if until_epoch is None else min(cfg.epochs, until_epoch)
        while self.state.epoch < last and self.state.step < self.total_steps:
            self.model.train()
            start, seen, correct, loss_sum = time.perf_counter(), 0, 0, 0.0
            order = torch.randperm(len(x_all), generator=self.generator)
            for i in range(self.steps_per_epoch):
                if self.state.step >= self.total_steps:
                    break
                idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                x, y = x_all[idx], y_all[idx]
                if d.augmented:
                    x = augment(x, self.generator)
                self.optimizer.zero_grad()
                logits = self.model(x)
                loss = loss_fn(logits, y)
                loss.backward()
                self.optimizer.step()
                self.scheduler.step()
                self.state.step += 1
                seen += len(y)
                loss_sum += float(loss.detach()) * len(y)
                correct += int((logits.detach().argmax(1) == y).sum())
                if progress is not None:
                    rate = seen / max(1e-9, time.perf_counter() - start)
                    progress(self.state.epoch + 1, i + 1, loss_sum / seen, correct / seen, rate)
            seconds = time.perf_counter() - start
            self.state.epoch += 1
            test = accuracy(self.model, d.x_test, d.y_test)
            m = EpochMetrics(self.state.epoch, self.state.step, round(loss_sum / max(1, seen), 5),
                             round(correct / max(1, seen), 5), round(test, 5), round(seconds, 2),
                             round(seen / max(1e-9, seconds), 1))
            self.state.history.append(m)
            self._save()
            self.log(f"epoch {m.epoch}/{cfg.epochs}: loss {m.loss:.4f}, train {100 * m.train_accuracy:.2f} %, "
                     f"test {100 * m.test_accuracy:.2f} % ({m.images_per_second:.0f} images/s)")
        if self.state.epoch >= cfg.epochs or self.state.step >= self.total_steps:
            self._export()
        return self.metrics()

    def _export(self) -> None:
        from hwgen.frontend.load import export_brevitas

        self.model.eval()
        out = self.config.output
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / MODEL, lambda p: export_brevitas(self.model, tuple(self.model.input_shape)).save(str(p)))


def _classes(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return int(last.out_features)


HARDWARE = "hardware"  # the build folder of --eval-hw, beside model.onnx


def evaluate_on_hardware(output: Path, data: Dataset, frames: int | None = None,
                         cache_dir: Path | None = None) -> dict:
    """`--eval-hw`: build `output/model.onnx` into `output/hardware` and run the test images
    through its RTL (Verilator) beside the exported model, with their labels. Returns (and adds to
    metrics.json as `hardware`) both accuracies and how many images got the same class from both;
    they agree image for image when the accelerator is exact, which `verify` checks too."""
    import hwgen

    options = {"cache_dir": cache_dir} if cache_dir is not None else {}
    build = hwgen.build(output / MODEL, output / HARDWARE, **options)
    n = len(data.x_test) if frames is None else min(frames, len(data.x_test))
    result = build.verify(data.x_test[:n], labels=data.y_test[:n].astype(np.int64))
    figures = {"images": n, "model_accuracy": result.model_accuracy,
               "accelerator_accuracy": result.accelerator_accuracy, "agreeing_images": result.agreeing_frames,
               "bit_exact_images": n - result.mismatched_frames, "passed": result.passed,
               "cycles_per_frame": result.cycles_per_frame, "build": str(output / HARDWARE)}
    path = output / METRICS
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    write_json_atomically(path, {**metrics, "hardware": figures})
    return figures

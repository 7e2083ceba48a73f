"""`hwgen train NAME -o DIR` (also `python -m hwgen.train NAME -o DIR`): train a zoo network in
Brevitas on real data and export it for `hwgen build`; see `hwgen.models.training` for what is
written and how a run resumes.

    hwgen train NAME [--size small|imagenet] [--data mnist5k|DIR] [--epochs N] [--batch-size B]
                [--lr LR] [--seed S] [--max-steps K] [--resume] [--threads T] [--quiet]
                [--eval-hw [--eval-frames N]] -o DIR

`--eval-hw` then builds the exported model (`DIR/hardware/`) and runs the test images through its
RTL in Verilator, printing the model's and the accelerator's accuracy side by side and how many
images they agree on; exit status 1 unless they agree on every one.
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam's initial learning rate (decays linearly to 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the epoch lines")
    p.add_argument("--eval-hw", action="store_true",
                   help="build the exported model and run the test images through its RTL (Verilator)")
    p.add_argument("--eval-frames", type=int, help="test images for --eval-hw (default: all)")


def cmd_train(args: argparse.Namespace) -> int:
    from hwgen.models.training import Trainer, TrainConfig

    if args.eval_frames is not None and args.eval_frames < 1:
        raise HwgenError(f"must be a positive integer, not {args.eval_frames}", where="--eval-frames")
    config = TrainConfig(network=args.name, output=Path(args.output), size=args.size, data=args.data,
                         epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         max_steps=args.max_steps, resume=args.resume, threads=args.threads)
    if args.quiet:
        trainer = Trainer(config, log=print)
        metrics = trainer.run()
    else:
        metrics = _run_with_progress(Trainer, config)
    last = metrics["epochs"][-1] if metrics["epochs"] else None
    summary = f"test accuracy {100 * last['test_accuracy']:.2f} % on {metrics['test_images']} images" if last else "no epoch run"
    print(f"trained {config.network} ({config.size}, {metrics['data']}, {metrics['steps']} steps): {summary}; "
          f"wrote {config.output}/model.onnx")
    if not args.eval_hw:
        return 0
    from hwgen.models.datasets import load
    from hwgen.models.training import evaluate_on_hardware

    hw = evaluate_on_hardware(config.output, load(config.data), args.eval_frames)
    print(f"on {hw['images']} test images: model {100 * hw['model_accuracy']:.2f} %, accelerator (rtlsim) "
          f"{100 * hw['accelerator_accuracy']:.2f} %, the same class on {hw['agreeing_images']}/{hw['images']}, "
          f"bit-exact on {hw['bit_exact_images']}; build in {hw['build']}")
    return 0 if hw["agreeing_images"] == hw["images"] and hw["passed"] else 1


def _run_with_progress(trainer_class, config) -> dict:
    """The run with a progress bar per epoch (loss, accuracy, images/s) on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.2%}  {task.fields[rate]:.0f} img/s"),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        trainer = trainer_class(config, log=progress.console.print)
        task = progress.add_task("train", total=trainer.steps_per_epoch, epoch=0, loss=0.0, acc=0.0, rate=0.0)
        shown = {"epoch": 0}

        def update(epoch: int, step: int, loss: float, acc: float, rate: float) -> None:
            if epoch != shown["epoch"]:
                shown["epoch"] = epoch
                progress.reset(task, total=trainer.steps_per_epoch)
            progress.update(task, completed=step, epoch=f"{epoch}/{config.epochs}", loss=loss, acc=acc, rate=rate)

        return trainer.run(progress=update)


def main(argv: list[str] | None = None) -> int:
    from hwgen.cli import run_command

    p = argparse.ArgumentParser(prog="python -m hwgen.train", description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(func=cmd_train)
    return run_command(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

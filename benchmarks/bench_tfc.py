"""Benchmark on TFC-W1A1 (FINN's BNN-PYNQ MLP, 784-64-64-64-10): compile and simulation speed, and
resources at finn-examples' folding.

Prints one JSON object per folding (cycles per frame; default 1024 and 64, the folding
finn-examples ships, 1.56 M FPS at 100 MHz): hwgen build time, Verilator build time (cold cache),
rtlsim throughput in simulated frames and cycles per wall-clock second, the simulated cycles per
frame (no stalls) and whether rtlsim equals the QONNX model on every frame, with and without random
stalls; Yosys `synth_xilinx` LUT / FF / BRAM18 / BRAM36 / DSP on the xc7z020, beside FINN's
estimate for the 64-cycle folding (8,537 LUTs, 26 BRAM18). Weights are the BNN-PYNQ model's
initialisation (speed does not depend on them), so this needs no data beside the project.

    .venv/bin/python benchmarks/bench_tfc.py [--frames 2000] [--foldings 1024,64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.host import HostIO
from hwgen.sim import run as run_sim
from hwgen.simulate import build_simulator, run_input_model, simulate_build
from hwgen.synth import synthesize
from hwgen.models.bnn_pynq import bnn_pynq_model

PART = "xc7z020clg400-1"
#: FINN's estimate for TFC-W1A1 at 64 cycles per frame (finn-examples' folding)
FINN_ESTIMATE_64 = {"cycles_per_frame": 64, "luts": 8537, "bram18": 26}


def run_folding(onnx: Path, work: Path, cycles: int, frames: int) -> dict:
    out, cache = work / f"build_{cycles}", work / "cache"
    t = time.perf_counter()
    report = build(onnx, out, BuildConfig(target_cycles=cycles, cache_dir=cache))
    build_s = time.perf_counter() - t

    host = HostIO(out)
    t = time.perf_counter()
    exe = build_simulator(out, cache)
    verilator_s = time.perf_counter() - t

    x = np.random.default_rng(0).random((frames, 1, 28, 28)).astype(np.float32)
    beats = host.encode(x)
    t = time.perf_counter()
    result = run_sim(exe, beats, host.output.beats_per_frame, host.output.bytes_per_beat)
    sim_s = time.perf_counter() - t

    few = x[:64]
    expected = run_input_model(out, few)
    exact = {str(stall): bool(np.array_equal(simulate_build(out, few, stall_prob=stall, seed=1, cache_dir=cache)[0],
                                             expected)) for stall in (0.0, 0.3)}
    synth = synthesize(out, PART)["synth"]
    return {
        "target_cycles": cycles,
        "cycles_per_frame": result.cycles_per_frame,
        "max_est_cycles": report["totals"]["max_est_cycles"],
        "fps_at_100mhz": round(100e6 / result.cycles_per_frame),
        "bit_exact_by_stall_prob": exact,
        "build_seconds": round(build_s, 2),
        "verilator_build_seconds_cold": round(verilator_s, 2),
        "rtlsim_frames": frames,
        "rtlsim_seconds": round(sim_s, 3),
        "rtlsim_frames_per_second": round(frames / sim_s, 1),
        "rtlsim_cycles_per_second": round(result.total_cycles / sim_s),
        "est_luts": report["totals"]["est_luts"],
        "est_brams": report["totals"]["est_brams"],
        **{f"yosys_{key}": synth[key] for key in ("luts", "ffs", "bram18", "bram36", "dsp", "logic_levels")},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--foldings", default="1024,64", help="target cycles per frame, comma-separated")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        export_brevitas(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28)).save(str(tmp / "tfc.onnx"))
        rows = [run_folding(tmp / "tfc.onnx", tmp, int(c), args.frames) for c in args.foldings.split(",")]
    print(json.dumps({"benchmark": "tfc_w1a1", "part": PART, "foldings": rows,
                      "finn_estimate_64_cycles": FINN_ESTIMATE_64}, indent=2))


if __name__ == "__main__":
    main()

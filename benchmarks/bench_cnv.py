"""Benchmark on CNV-W1A1 (FINN's BNN-PYNQ CIFAR-10 CNV) at several foldings: frame rate, resources,
tool times, beside BNN-PYNQ's board figures and FINN's estimates.

For each folding (a target frame rate at 100 MHz, or `max`: the fastest folding whose estimates fit
the xc7z020) it prints, in one JSON object: the simulated cycles per frame and frame rate (rtlsim
in Verilator, bit-exact against the QONNX model on the first CIFAR-10 test images, else random
ones), the rtlsim speed (simulated cycles and frames per wall-clock second), Yosys `synth_xilinx`
LUT / FF / BRAM18 / BRAM36 / DSP on the PYNQ-Z1's xc7z020 (hierarchical, per unit), whether that
fits, the deepest unit's levels of logic, the estimates, and the seconds taken by the hwgen build,
the Verilator build (cold cache), the rtlsim run and synthesis; then the goals of the
performance work, each with whether it is met. Weights are random with balanced BatchNorm
statistics (`with_fixed_batchnorm_statistics`, seed 0): frame rate and resources do not depend on
their values beyond the ROM contents.

    .venv/bin/python benchmarks/bench_cnv.py [--foldings 3050,6100,12200,max] [--images 8] [--jobs 2] [--out DIR]
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
from hwgen.sim.verilator import sim_threads
from hwgen.simulate import build_simulator, run_input_model, simulate_build
from hwgen.synth import synthesize
from hwgen.models.cnv import cnv_w1a1, with_fixed_batchnorm_statistics
from hwgen.models.data import SHARED_DATA

CLOCK_MHZ = 100.0
PART = "xc7z020clg400-1"  # PYNQ-Z1
#: BNN-PYNQ's CNV-W1A1 on PYNQ-Z1 (its published results table, Vivado).
BNN_PYNQ = {"fps": 3050, "luts": 26072, "bram36": 124}
#: FINN's own estimates for CNV-W1A1 at two foldings.
FINN_ESTIMATES = [{"fps": 3052, "luts": 25785, "bram18": 140}, {"fps": 6104, "luts": 45762, "bram18": 207}]
#: the FINN paper's CNV frame rate (ZC706)
FINN_PAPER_FPS = 21906
CIFAR = SHARED_DATA / "cifar10" / "cifar10_test_first1017.npz"


def images(n: int) -> tuple[np.ndarray, str]:
    """`n` model inputs (N, 3, 32, 32) in [0, 1] and where they came from."""
    if CIFAR.is_file():
        return (np.load(CIFAR)["images"][:n] / 255.0).astype(np.float32), "cifar10"
    return np.random.default_rng(0).random((n, 3, 32, 32)).astype(np.float32), "random"


def run_folding(onnx: Path, work: Path, folding: str, x: np.ndarray, jobs: int) -> dict:
    target = "max" if folding == "max" else float(folding)
    out, cache = work / f"build_{folding}", work / "cache"
    t = time.perf_counter()
    report = build(onnx, out, BuildConfig(target_fps=target, clock_mhz=CLOCK_MHZ, part=PART, cache_dir=cache))
    build_s = time.perf_counter() - t

    t = time.perf_counter()
    build_simulator(out, cache)
    verilator_s = time.perf_counter() - t

    t = time.perf_counter()
    y, stats = simulate_build(out, x, cache_dir=cache)
    sim_s = time.perf_counter() - t
    exact = bool(np.array_equal(y, run_input_model(out, x)))

    t = time.perf_counter()
    synth = synthesize(out, PART, jobs=jobs)["synth"]
    synth_s = time.perf_counter() - t

    cycles = stats["cycles_per_frame"]
    simulated_cycles = stats["latency_cycles"] + cycles * (len(x) - 1)
    return {
        "folding": folding,
        "target_fps": target,
        "target": report["target"],
        "cycles_per_frame": cycles,
        "fps_at_100mhz": round(CLOCK_MHZ * 1e6 / cycles, 1),
        "bit_exact": exact,
        "max_est_cycles": report["totals"]["max_est_cycles"],
        "est_luts": report["totals"]["est_luts"],
        "est_brams": report["totals"]["est_brams"],
        **{key: synth[key] for key in ("luts", "ffs", "bram18", "bram36", "dsp", "fits", "logic_levels")},
        "bram36_equivalent": synth["bram36"] + synth["bram18"] / 2,
        "build_seconds": round(build_s, 1),
        "verilator_build_seconds_cold": round(verilator_s, 1),
        "sim_seconds": round(sim_s, 1),
        "verilator_threads": sim_threads(sum(p.stat().st_size for p in (out / "rtl").glob("*.v"))),
        "rtlsim_cycles_per_second": round(simulated_cycles / sim_s),
        "rtlsim_frames_per_second": round(len(x) / sim_s, 2),
        "synth_seconds": round(synth_s, 1),
    }


def goals(rows: list[dict]) -> dict:
    """The performance goals against BNN-PYNQ and the FINN paper, each with whether it is met."""
    fast = [r for r in rows if r["fps_at_100mhz"] >= 12200 and r["bit_exact"]]
    fitting = [r for r in rows if r["fits"] and r["bit_exact"]]
    best = max(fitting, key=lambda r: r["fps_at_100mhz"], default=None)
    return {
        "4x_bnn_pynq_in_its_area": {
            "goal": ">= 12,200 FPS in <= 26,072 LUTs and <= 124 BRAM36",
            "met": any(r["luts"] <= BNN_PYNQ["luts"] and r["bram36_equivalent"] <= BNN_PYNQ["bram36"] for r in fast),
            "smallest_at_12200": min(({"luts": r["luts"], "bram36_equivalent": r["bram36_equivalent"],
                                       "fps": r["fps_at_100mhz"]} for r in fast), key=lambda d: d["luts"], default=None),
        },
        "finn_paper_rate_on_xc7z020": {
            "goal": ">= 21,900 FPS at 100 MHz within the xc7z020 (Yosys)",
            "met": best is not None and best["fps_at_100mhz"] >= 21900,
            "highest_fitting_fps": None if best is None else best["fps_at_100mhz"],
        },
    }


def run(work: Path, foldings: list[str], n_images: int, jobs: int) -> dict:
    model = with_fixed_batchnorm_statistics(cnv_w1a1(), seed=0)
    export_brevitas(model, (1, 3, 32, 32)).save(str(work / "cnv.onnx"))
    x, source = images(n_images)
    rows = [run_folding(work / "cnv.onnx", work, folding, x, jobs) for folding in foldings]
    return {
        "benchmark": "cnv_w1a1",
        "part": PART,
        "clock_mhz": CLOCK_MHZ,
        "images": len(x),
        "image_source": source,
        "foldings": rows,
        "goals": goals(rows),
        "bnn_pynq_pynq_z1": BNN_PYNQ,
        "finn_estimates": FINN_ESTIMATES,
        "finn_paper_fps_zc706": FINN_PAPER_FPS,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--foldings", default="3050,6100,12200,max",
                   help="target frame rates at 100 MHz, comma-separated; 'max': the fastest that fits the xc7z020")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--out", type=Path, help="work folder to keep (default: a temporary one)")
    p.add_argument("--jobs", type=int, default=2, help="Yosys processes at a time")
    args = p.parse_args()
    foldings = [f.strip() for f in args.foldings.split(",") if f.strip()]
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result = run(args.out, foldings, args.images, args.jobs)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(Path(tmp), foldings, args.images, args.jobs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark on CNV-W1A1 (FINN's BNN-PYNQ CIFAR-10 CNV): frame rate, resources, tool times.

Prints one JSON object: the frame rate at 100 MHz from the simulated cycles per frame, the build's
estimates (`max_est_cycles`, `est_luts`, `est_brams`), Yosys `synth_xilinx` resources for a PYNQ-Z1
(xc7z020clg400-1) and whether they fit, the seconds taken by the hwgen build, the Verilator build
(cold cache), the rtlsim run and synthesis, and beside them BNN-PYNQ's published CNV-W1A1 figures
on PYNQ-Z1 (Vivado HLS, 100 MHz). Weights are random with balanced BatchNorm statistics
(`models.cnv.with_fixed_batchnorm_statistics`, seed 0): frame rate and resources do not depend on
their values beyond the ROM contents. Images: the first CIFAR-10 test images from
`../shared/data/cifar10/`, random ones if that is absent (the cycle count is the same).

    .venv/bin/python benchmarks/bench_cnv.py [--images 8] [--out DIR] [--jobs 2]
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
from hwgen.simulate import simulate_build
from hwgen.synth import synthesize
from hwgen.models.cnv import cnv_w1a1, with_fixed_batchnorm_statistics
from hwgen.models.data import SHARED_DATA

CLOCK_MHZ = 100.0
TARGET_FPS = 3050
PART = "xc7z020clg400-1"  # PYNQ-Z1
#: BNN-PYNQ's CNV-W1A1 on PYNQ-Z1 (its published results table).
BNN_PYNQ = {"fps": 3050, "luts": 26072, "bram36": 124}
CIFAR = SHARED_DATA / "cifar10" / "cifar10_test_first1017.npz"


def images(n: int) -> tuple[np.ndarray, str]:
    """`n` model inputs (N, 3, 32, 32) in [0, 1] and where they came from."""
    if CIFAR.is_file():
        return (np.load(CIFAR)["images"][:n] / 255.0).astype(np.float32), "cifar10"
    return np.random.default_rng(0).random((n, 3, 32, 32)).astype(np.float32), "random"


def run(work: Path, n_images: int, jobs: int) -> dict:
    model = with_fixed_batchnorm_statistics(cnv_w1a1(), seed=0)
    export_brevitas(model, (1, 3, 32, 32)).save(str(work / "cnv.onnx"))
    out, cache = work / "build", work / "cache"

    t = time.perf_counter()
    report = build(work / "cnv.onnx", out, BuildConfig(target_fps=TARGET_FPS, clock_mhz=CLOCK_MHZ,
                                                        cache_dir=cache))
    build_s = time.perf_counter() - t

    t = time.perf_counter()
    build_sim(out / "rtl", HostIO(out).top, cache)
    verilator_s = time.perf_counter() - t

    x, source = images(n_images)
    t = time.perf_counter()
    _, stats = simulate_build(out, x, cache_dir=cache)
    sim_s = time.perf_counter() - t

    t = time.perf_counter()
    synth = synthesize(out, PART, jobs=jobs)["synth"]
    synth_s = time.perf_counter() - t

    return {
        "benchmark": "cnv_w1a1",
        "target_fps": TARGET_FPS,
        "images": len(x),
        "image_source": source,
        "cycles_per_frame": stats["cycles_per_frame"],
        "fps_at_100mhz": round(CLOCK_MHZ * 1e6 / stats["cycles_per_frame"], 1),
        "max_est_cycles": report["totals"]["max_est_cycles"],
        "est_luts": report["totals"]["est_luts"],
        "est_brams": report["totals"]["est_brams"],
        "part": PART,
        **{key: synth[key] for key in ("luts", "ffs", "bram18", "bram36", "dsp", "fits")},
        "build_seconds": round(build_s, 1),
        "verilator_build_seconds_cold": round(verilator_s, 1),
        "sim_seconds": round(sim_s, 1),
        "synth_seconds": round(synth_s, 1),
        "bnn_pynq_pynq_z1": BNN_PYNQ,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--out", type=Path, help="work folder to keep (default: a temporary one)")
    p.add_argument("--jobs", type=int, default=2, help="Yosys processes at a time")
    args = p.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result = run(args.out, args.images, args.jobs)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(Path(tmp), args.images, args.jobs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

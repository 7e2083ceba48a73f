"""Peak memory of building CNV-W1A1 and of its rtlsim, each in a fresh process.

Prints one JSON object: for the build and for the simulation (Verilator build with a cold cache,
then the run), the peak resident set size of the Python process and, separately, of the largest
process it started (Yosys for Verilog emission, Verilator, the C++ compiler, the bench; a child
counts the interpreter's pages it shares until it execs the tool, so this is an upper bound), in
MiB, and the seconds taken; beside them
the 4 GiB a CNV build must stay under, and the ~20 GB FINN's users report for theirs. Each phase
runs in its own interpreter (`python bench_memory.py --phase build|sim DIR`), so one's memory does
not count in the other's.

    .venv/bin/python benchmarks/bench_memory.py [--images 8] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_MIB = 4096
FINN_REPORTED_MIB = 20_000


def _peaks() -> dict:
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tools_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"python_peak_mib": round(self_kib / 1024, 1), "largest_child_peak_mib": round(tools_kib / 1024, 1)}


def phase_build(work: Path) -> dict:
    from hwgen.builder import build
    from hwgen.config import BuildConfig
    from hwgen.frontend import export_brevitas
    from hwgen.models.cnv import cnv_w1a1, with_fixed_batchnorm_statistics

    export_brevitas(with_fixed_batchnorm_statistics(cnv_w1a1(), seed=0), (1, 3, 32, 32)).save(str(work / "cnv.onnx"))
    t = time.perf_counter()
    build(work / "cnv.onnx", work / "build", BuildConfig(target_fps=3050, cache_dir=work / "cache"))
    return {"seconds": round(time.perf_counter() - t, 1), **_peaks()}


def phase_sim(work: Path, images: int) -> dict:
    import numpy as np

    from hwgen.simulate import simulate_build

    x = np.random.default_rng(0).random((images, 3, 32, 32)).astype(np.float32)
    t = time.perf_counter()
    simulate_build(work / "build", x, cache_dir=work / "cache")
    return {"seconds": round(time.perf_counter() - t, 1), "images": images, **_peaks()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    p.add_argument("--phase", choices=("build", "sim"), help=argparse.SUPPRESS)
    p.add_argument("work", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:
        result = phase_build(args.work) if args.phase == "build" else phase_sim(args.work, args.images)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="hwgen-mem-") as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        phases = {}
        for phase in ("build", "sim"):
            proc = subprocess.run([sys.executable, __file__, "--phase", phase, "--images", str(args.images), str(work)],
                                  capture_output=True, text=True, check=True)
            phases[phase] = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = max(max(v["python_peak_mib"], v["largest_child_peak_mib"]) for v in phases.values())
    print(json.dumps({"model": "CNV-W1A1", **phases, "peak_mib": peak, "limit_mib": LIMIT_MIB,
                      "under_limit": peak < LIMIT_MIB, "finn_reported_mib": FINN_REPORTED_MIB}, indent=2))


if __name__ == "__main__":
    main()

"""The zoo's ImageNet configs: build time and peak memory, resources, and the best frame rate that
fits each part.

For every network (ImageNet size, random parameters of seed 0), in a fresh interpreter: export to
QONNX and `hwgen build --target-fps FPS` without rtlsim, timed, with the peak resident memory of
the process (and of the largest tool it started). Then a folding sweep on the build's
`graphs/04_to_hardware.onnx`: the automatic folding for each target of `SWEEP_CYCLES` (cycles per
frame), the units' estimates plus the plumbing (FIFOs, width converters, fan-out) of the real build,
taken as it is at every folding (its memory is the same bits in other shapes), sized against each
part (`hwgen.fit`); the best frame rate per part is the fastest folding that fits, at the part's
default clock.

Each build also gives its requantizations by kind (arithmetic, thresholds, table: `report.json`
`requantization`) and the bits of threshold and table memory (`threshold_bits`), beside those of
`--baseline`, a committed earlier run (`benchmarks/results/zoo_imagenet_tables.json`: every 8-bit
requantization a threshold set or a table, before `Requantize`).

Prints one JSON object and writes the Markdown table to `--table` (committed as
`benchmarks/results/zoo_imagenet.md`, with the command that made it).

    .venv/bin/python benchmarks/bench_zoo.py [--fps 100] [--names reactnet-a bireal-18 ...] [--table FILE]
                                             [--baseline benchmarks/results/zoo_imagenet_tables.json] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

IMAGENET = ["reactnet-a", "bireal-18", "bireal-34", "binarydensenet-28", "binarydensenet-37",
            "abcnet-18-m1n1", "abcnet-18-m3n3", "abcnet-18-m5n5"]
#: the folding sweep's targets, cycles per frame (100 MHz: 10 to 10,000 FPS)
SWEEP_CYCLES = [10_000_000, 5_000_000, 2_000_000, 1_000_000, 500_000, 200_000, 100_000, 50_000, 20_000, 10_000]


def phase_build(name: str, fps: float, work: Path) -> dict:
    """Export and build `name` at ImageNet size, seconds and peak memory, then sweep its foldings
    (run in a process of its own: `--jobs` builds run side by side)."""
    from hwgen.builder import build
    from hwgen.config import BuildConfig
    from hwgen.models.zoo import export

    t = time.perf_counter()
    export(name, work / f"{name}.onnx", "imagenet", seed=0)
    exported = time.perf_counter() - t
    report = build(work / f"{name}.onnx", work / name, BuildConfig(target_fps=fps, cache_dir=work / "cache"))
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"export_seconds": round(exported, 1), "build_seconds": round(time.perf_counter() - t - exported, 1),
            "peak_mib": round(self_kib / 1024), "largest_child_peak_mib": round(child_kib / 1024),
            "units": len(report["layers"]), "max_est_cycles": report["totals"]["max_est_cycles"],
            "parts": report["parts"], "requantization": report["requantization"],
            "best": sweep(work / name)}


def sweep(build_dir: Path) -> dict[str, dict]:
    """Per part: the fastest folding of `SWEEP_CYCLES` (and the build's own) that fits (every one
    tried)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hwgen.fit import part_fit
    from hwgen.ops import unit_of
    from hwgen.parts import FIT_PARTS, PARTS
    from hwgen.transforms.hardware.choose_weight_memories import placed
    from hwgen.transforms.hardware.set_folding import SetFolding, fold_options

    report = json.loads((build_dir / "report.json").read_text())
    hardware = ModelWrapper(str(build_dir / "graphs" / "04_to_hardware.onnx"))
    options = fold_options(hardware)  # listed once for all the targets and parts
    fixed = [unit_of(hardware, n) for n in hardware.graph.node if n.name not in options]  # nothing to fold
    compute = {n.name for n in hardware.graph.node}
    plumbed = ModelWrapper(str(build_dir / "graphs" / "06_plumbing.onnx"))
    plumbing = [unit_of(plumbed, n) for n in plumbed.graph.node if n.name not in compute]
    best: dict[str, dict] = {}
    for part in FIT_PARTS:  # folded for each part: block RAM and DSPs priced on it
        for cycles in sorted(set(SWEEP_CYCLES + [report["totals"]["max_est_cycles"]]), reverse=True):
            # the units as the build folds them and places their weights (FOLD without rewriting
            # the graph)
            chosen = SetFolding(cycles, PARTS[part], options).choose(hardware)
            compute_units = placed([o.unit for o in chosen.values()] + fixed, "auto", PARTS[part])
            # the rate is the compute units': the plumbing, as the build at --fps made it, would
            # widen with a faster folding (a width converter's cycles follow its widths)
            reached = max(u.est_cycles() for u in compute_units)
            row = part_fit(compute_units + plumbing, reached, PARTS[part])
            # every target is tried: a slow folding can need more memory than a faster one (deep,
            # narrow weight memories that block RAM and UltraRAM hold in more of their blocks)
            if row["fits"] and row["fps"] > best.get(part, {}).get("fps", 0):
                best[part] = {"fps": row["fps"], "cycles": reached, "est_luts": row["est_luts"],
                              "est_bram18": row["est_bram18"], "est_uram": row["est_uram"],
                              "est_dsps": row["est_dsps"]}
    return best


def markdown(results: dict, command: str) -> str:
    from hwgen.parts import FIT_PARTS

    head = ["network", "binary MACs / frame", "weight bits", "threshold + table bits (before -> after)",
            "requantizations: arithmetic / thresholds / table", f"LUT / BRAM18 / URAM / DSP (at {results['fps']:g} FPS)"]
    head += [f"best FPS {p}" for p in FIT_PARTS]
    lines = [f"`{command}`", "",
             f"Estimates of hwgen's resource model at {results['fps']:g} FPS (100 MHz), URAM as counted on the "
             "xczu7ev; best FPS: the fastest automatic folding that fits the part, at its default clock "
             "(xc7z020 100 MHz, xczu3eg 150, xczu7ev 200, xck26 200); - where none fits.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results["networks"].items():
        zu7 = next(p for p in r["parts"] if p["part"] == "xczu7ev")
        q = r["requantization"]
        before = r.get("threshold_bits_before")
        ratio = f" ({before / max(zu7['threshold_bits'], 1):.0f}x)" if before else ""
        cells = [name, f"{r['binary_macs']:,}", f"{zu7['weight_bits']:,}",
                 f"{before or 0:,} -> {zu7['threshold_bits']:,}{ratio}",
                 f"{q['arithmetic']} / {q['thresholds']} / {q['table']}",
                 f"{zu7['est_luts']:,} / {zu7['est_bram18']:,} / {zu7['est_uram']} / {zu7['est_dsps']}"]
        cells += [f"{r['best'][p]['fps']:,.0f}" if p in r["best"] else "-" for p in FIT_PARTS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "The fastest folding that fits each part (estimates, folded for that part: LUT / BRAM18 / URAM / "
              "DSP, at the part's clock):", "", "| network | " + " | ".join(FIT_PARTS) + " |",
              "|---|" + "---|" * len(FIT_PARTS)]
    for name, r in results["networks"].items():
        cells = [f"{b['fps']:,.0f} FPS: {b['est_luts']:,} / {b['est_bram18']:,} / {b['est_uram']} / {b['est_dsps']}"
                 if (b := r["best"].get(p)) else "-" for p in FIT_PARTS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    kept = [(name, unit, why) for name, r in results["networks"].items()
            for unit, why in r["requantization"]["kept"].items()]
    if kept:
        lines += ["", "Tables and threshold sets that stay, and why:", ""]
        lines += [f"- {name} `{unit}`: {why}" for name, unit, why in kept]
    lines += ["", "Build time and peak memory (2 cores, without rtlsim; with `--jobs 2` two builds share them):", "",
              "| network | export s | build s | peak MiB |", "|---|---|---|---|"]
    for name, r in results["networks"].items():
        lines.append(f"| {name} | {r['export_seconds']} | {r['build_seconds']} | {r['peak_mib']:,} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fps", type=float, default=100.0, help="--target-fps of the timed builds (at 100 MHz)")
    p.add_argument("--names", nargs="+", default=IMAGENET)
    p.add_argument("--table", type=Path, help="write the Markdown table here")
    p.add_argument("--baseline", type=Path, help="an earlier run's JSON: its threshold bits are the 'before'")
    p.add_argument("--json", type=Path, help="write the JSON here too")
    p.add_argument("--jobs", type=int, default=1, help="networks built at once (each build in a process of its own)")
    p.add_argument("--phase", nargs=3, metavar=("NAME", "FPS", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:
        name, fps, work = args.phase
        print(json.dumps(phase_build(name, float(fps), Path(work))))
        return

    from hwgen.models.zoo import binary_macs, network

    baseline = json.loads(args.baseline.read_text())["networks"] if args.baseline else {}
    results: dict = {"fps": args.fps, "networks": {}}

    def one(name: str, tmp: str) -> dict:
        """Build `name` and sweep its foldings in a process of its own (its time and memory alone)."""
        proc = subprocess.run([sys.executable, __file__, "--phase", name, str(args.fps), tmp],
                              capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["binary_macs"] = binary_macs(network(name, "imagenet"))
        if name in baseline:
            r["threshold_bits_before"] = next(p["threshold_bits"] for p in baseline[name]["parts"]
                                              if p["part"] == "xczu7ev")
        print(f"{name}: built in {r['build_seconds']} s, peak {r['peak_mib']} MiB", file=sys.stderr, flush=True)
        return r

    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = dict(zip(args.names, pool.map(lambda name: one(name, tmp), args.names)))
    results["networks"] = {name: done[name] for name in args.names}
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.table:
        command = "python benchmarks/bench_zoo.py " + " ".join(sys.argv[1:])
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(markdown(results, command))


if __name__ == "__main__":
    main()

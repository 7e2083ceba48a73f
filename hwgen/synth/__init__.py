"""Synthesis of a build with Yosys `synth_xilinx`: real LUT / FF / BRAM / DSP counts beside the
estimates of `report.json`.

    synthesize(OUT, part="xc7z020clg400-1", jobs=2)

runs the whole accelerator once (top module from `OUT/accelerator.json`) and every unit on its own
(`<top>_<layer name>` from `OUT/rtl/`, as its own top), up to `jobs` Yosys processes at a time, and
adds to `OUT/report.json` (rewritten atomically):

- `synth`: {"part", "luts", "ffs", "bram18", "bram36", "dsp", "fits"} for the whole accelerator;
  `fits` = every resource within the part, a RAMB18 counting as half a RAMB36;
- per layer `synth`: {"luts", "ffs", "bram18", "bram36", "dsp"}.

What is counted as a LUT or FF: `hwgen.synth.yosys`. Yosys's scripts, logs and full cell counts go
to `OUT/synth/`, with `summary.json` (per module: seconds taken and every cell type).
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hwgen.errors import HwgenError
from hwgen.report import write_json_atomically
from hwgen.rtl.stitch import _ident
from hwgen.synth.parts import PARTS, Part, lookup_part
from hwgen.synth.yosys import RESOURCES, SynthRun, count_resources, find_yosys

__all__ = ["PARTS", "Part", "lookup_part", "synthesize", "count_resources"]


def _read_build(build_dir: Path) -> tuple[dict, str]:
    report_path = build_dir / "report.json"
    if not report_path.is_file():
        raise HwgenError("no report.json: not a finished build folder", where=str(build_dir))
    accel_path = build_dir / "accelerator.json"
    if not accel_path.is_file():
        raise HwgenError("no accelerator.json: not a finished build folder", where=str(build_dir))
    return json.loads(report_path.read_text()), json.loads(accel_path.read_text())["top"]


def _runs(build_dir: Path, report: dict, top: str) -> tuple[SynthRun, dict[str, SynthRun]]:
    """The whole-design run and one run per layer (by layer name)."""
    rtl = build_dir / "rtl"
    if not (rtl / f"{top}.v").is_file():
        raise HwgenError(f"no top-level Verilog {top}.v", where=str(rtl))
    per_layer = {}
    for layer in report["layers"]:
        module = f"{top}_{_ident(layer['name'])}"
        if not (rtl / f"{module}.v").is_file():
            raise HwgenError(f"no Verilog for layer {layer['name']} ({module}.v)", where=str(rtl))
        per_layer[layer["name"]] = SynthRun(module, (f"rtl/{module}.v",))
    files = tuple(sorted(f"rtl/{p.name}" for p in rtl.glob("*.v")))
    return SynthRun(top, files), per_layer


def _equal_units(build_dir: Path, runs: list[SynthRun]) -> dict[str, str]:
    """For each unit module, the first module whose Verilog equals its own up to the module name."""
    first: dict[str, str] = {}
    same_as = {}
    for r in runs:
        text = (build_dir / r.files[0]).read_text().replace(r.top, "\0")
        same_as[r.top] = first.setdefault(text, r.top)
    return same_as


def synthesize(build_dir: Path, part: str = "xc7z020clg400-1", jobs: int = 2) -> dict:
    """Synthesize the build in `build_dir` for `part`; returns the updated report (its `synth` key
    holds the whole accelerator, each layer's `synth` that unit alone)."""
    build_dir = Path(build_dir)
    device = lookup_part(part)
    if jobs < 1:
        raise HwgenError(f"must be at least 1, got {jobs}", where="jobs")
    report, top = _read_build(build_dir)
    whole, per_layer = _runs(build_dir, report, top)
    yosys = find_yosys()

    synth_dir = build_dir / "synth"
    if synth_dir.exists():
        shutil.rmtree(synth_dir)
    synth_dir.mkdir()
    # Equal units run once; the whole design first and the largest units next, so that the longest
    # runs overlap.
    same_as = _equal_units(build_dir, list(per_layer.values()))
    units = sorted({r.top: r for r in per_layer.values() if same_as[r.top] == r.top}.values(),
                   key=lambda r: -(build_dir / r.files[0]).stat().st_size)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {r.top: pool.submit(r.run, yosys, build_dir, device.family) for r in [whole, *units]}
        results = {name: f.result() for name, f in futures.items()}
    for module, first in same_as.items():
        if module != first:
            results[module] = {**results[first], "seconds": 0.0, "same_as": first}

    (synth_dir / "summary.json").write_text(json.dumps(
        {"part": part, "family": device.family, "yosys": str(yosys), "modules": results}, indent=2) + "\n")
    total = {k: results[top][k] for k in RESOURCES}
    report["synth"] = {"part": part, **total, "fits": device.fits(**total)}
    for layer in report["layers"]:
        layer["synth"] = {k: results[per_layer[layer["name"]].top][k] for k in RESOURCES}
    write_json_atomically(build_dir / "report.json", report)
    return report

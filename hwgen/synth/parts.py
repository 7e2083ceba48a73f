"""FPGA parts that synthesis knows: their Yosys `synth_xilinx` family and resource capacities.

A part is named as Vivado names it (`xc7z020clg400-1`, `xczu3eg-sbva484-1-i`); the device is the
leading name (`xc7z020`), package and speed grade do not change the capacities. Capacities are
from the Xilinx product tables (DS190 Zynq-7000, DS891 Zynq UltraScale+): CLB LUTs, CLB flip-flops,
36 Kb block RAMs (each two 18 Kb halves) and DSP slices.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwgen.errors import HwgenError


@dataclass(frozen=True)
class Part:
    """One device: its `synth_xilinx -family` and what it holds."""

    device: str
    family: str  # Yosys synth_xilinx family: xc7 (7-series), xcup (UltraScale+)
    luts: int
    ffs: int
    bram36: int
    dsp: int

    def fits(self, luts: int, ffs: int, bram18: int, bram36: int, dsp: int) -> bool:
        """Every resource within the part; 18 Kb BRAMs count as half a 36 Kb one."""
        return (luts <= self.luts and ffs <= self.ffs and bram36 + bram18 / 2 <= self.bram36
                and dsp <= self.dsp)


PARTS: dict[str, Part] = {p.device: p for p in (
    Part("xc7z010", "xc7", luts=17_600, ffs=35_200, bram36=60, dsp=80),        # Zybo Z7-10
    Part("xc7z020", "xc7", luts=53_200, ffs=106_400, bram36=140, dsp=220),     # PYNQ-Z1/Z2
    Part("xczu3eg", "xcup", luts=70_560, ffs=141_120, bram36=216, dsp=360),    # Ultra96
    Part("xczu7ev", "xcup", luts=230_400, ffs=460_800, bram36=312, dsp=1_728),  # ZCU104
)}


def lookup_part(name: str) -> Part:
    """The part named `name`: a known device, optionally followed by package and speed grade."""
    lowered = name.strip().lower()
    for device, part in PARTS.items():
        rest = lowered[len(device):]
        if lowered.startswith(device) and (rest == "" or rest[0] == "-" or rest[0].isalpha()):
            return part
    known = ", ".join(sorted(PARTS))
    raise HwgenError(f"unknown part {name!r}; known devices: {known} (with any package/speed suffix)",
                     where="part")

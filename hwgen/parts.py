"""FPGA parts that synthesis knows: their Yosys `synth_xilinx` family and resource capacities.

A part is named as Vivado names it (`xc7z020clg400-1`, `xczu3eg-sbva484-1-i`); the device is the
leading name (`xc7z020`), package and speed grade do not change the capacities. Capacities are
from the Xilinx product tables (DS190 Zynq-7000, DS891 Zynq UltraScale+, DS987 Kria K26): CLB LUTs,
CLB flip-flops, 36 Kb block RAMs (each two 18 Kb halves), 288 Kb UltraRAMs and DSP slices.

`default_clock_mhz` is the fabric clock a build for the part's usual board is rated at: 100 MHz on
the Zynq-7000 (-1 speed grade, PYNQ-Z1/Z2), 150 MHz on the -1 Ultra96 part, 200 MHz on the -2
ZCU104 and KV260 parts. `FIT_PARTS` are the parts every build's report is sized against.
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
    uram: int = 0
    default_clock_mhz: float = 100.0

    @property
    def bram18(self) -> int:
        return 2 * self.bram36

    def fits(self, luts: int, ffs: int, bram18: int, bram36: int, dsp: int, uram: int = 0) -> bool:
        """Every resource within the part; 18 Kb BRAMs count as half a 36 Kb one."""
        return (luts <= self.luts and ffs <= self.ffs and bram36 + bram18 / 2 <= self.bram36
                and dsp <= self.dsp and uram <= self.uram)


PARTS: dict[str, Part] = {p.device: p for p in (
    Part("xc7z010", "xc7", luts=17_600, ffs=35_200, bram36=60, dsp=80),        # Zybo Z7-10
    Part("xc7z020", "xc7", luts=53_200, ffs=106_400, bram36=140, dsp=220),     # PYNQ-Z1/Z2
    Part("xczu3eg", "xcup", luts=70_560, ffs=141_120, bram36=216, dsp=360, default_clock_mhz=150.0),  # Ultra96
    Part("xczu7ev", "xcup", luts=230_400, ffs=460_800, bram36=312, dsp=1_728, uram=96,
         default_clock_mhz=200.0),                                                # ZCU104
    Part("xck26", "xcup", luts=117_120, ffs=234_240, bram36=144, dsp=1_248, uram=64,
         default_clock_mhz=200.0),                                                # KV260
)}
FIT_PARTS: tuple[str, ...] = ("xc7z020", "xczu3eg", "xczu7ev", "xck26")
#: the part synthesis and the fastest folding assume when none is named: the PYNQ-Z1's
DEFAULT_PART = "xc7z020clg400-1"


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

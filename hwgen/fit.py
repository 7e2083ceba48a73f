"""Which parts a build fits, and how fast it runs there: the `parts` table of `report.json`.

For every part of `FIT_PARTS` (xc7z020, xczu3eg, xczu7ev, xck26): its capacities, what the build
needs by the units' estimates, whether that fits and the frame rate at the part's default clock.

On-chip memory. `weight_bits` and `threshold_bits` count the bits of the parameter memories (the
MVUs' weights, the thresholds and lookup tables). On UltraScale+ parts with UltraRAM (URAM288,
4K x 72 bits each) a deep parameter memory is counted in URAM instead of block RAM where that
saves block RAM: when it needs at least `URAM_MIN_SAVING` 18 Kb BRAMs per URAM it would take,
the memories that save the most per URAM first, while URAMs are left. Estimates only: the
Verilog keeps every parameter memory an initialised ROM, which UltraScale+ UltraRAM cannot be
(it has no configuration-time contents), so a build that needs URAM needs its weights loaded at
run time - a board flow still to come.
"""

from __future__ import annotations

import math

from hwgen.parts import FIT_PARTS, PARTS, Part
from hwgen.units.base import Unit
from hwgen.units.datapath import memory_bram18

URAM_DEPTH, URAM_WIDTH = 4096, 72
#: 18 Kb BRAMs a memory must take per URAM it would take before it is counted in URAM
URAM_MIN_SAVING = 4


def uram_count(depth: int, width: int) -> int:
    return math.ceil(depth / URAM_DEPTH) * math.ceil(width / URAM_WIDTH)


def parts_table(units: list[Unit], max_cycles: int) -> list[dict]:
    """One entry per part of `FIT_PARTS`, as `report.json` holds them."""
    return [part_fit(units, max_cycles, PARTS[name]) for name in FIT_PARTS]


def part_fit(units: list[Unit], max_cycles: int, part: Part) -> dict:
    memories = [m for unit in units for m in unit.parameter_memories()]
    luts = sum(int(u.est_luts()) for u in units)
    bram18 = sum(int(u.est_brams()) for u in units)
    dsps = sum(int(u.est_dsps()) for u in units)
    uram = 0
    if part.uram:
        movable = [(memory_bram18(d, w), uram_count(d, w)) for d, w, _ in memories]
        movable = sorted((m for m in movable if m[0] >= URAM_MIN_SAVING * m[1]), key=lambda m: -m[0] / m[1])
        for brams, urams in movable:
            if uram + urams <= part.uram:
                uram += urams
                bram18 -= brams
    fits = luts <= part.luts and bram18 <= part.bram18 and uram <= part.uram and dsps <= part.dsp
    return {
        "part": part.device,
        "clock_mhz": part.default_clock_mhz,
        "luts": part.luts, "bram18": part.bram18, "uram": part.uram, "dsp": part.dsp,
        "weight_bits": sum(d * w for d, w, role in memories if role == "weights"),
        "threshold_bits": sum(d * w for d, w, role in memories if role != "weights"),
        "est_luts": luts, "est_bram18": bram18, "est_uram": uram, "est_dsps": dsps,
        "fits": fits,
        "fps": part.default_clock_mhz * 1e6 / max_cycles,
    }

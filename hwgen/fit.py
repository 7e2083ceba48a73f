"""Which parts a build fits, and how fast it runs there: the `parts` table of `report.json`.

For every part of `FIT_PARTS` (xc7z020, xczu3eg, xczu7ev, xck26): its capacities, what the build
needs by the units' estimates, whether that fits and the frame rate at the part's default clock.

On-chip memory. `weight_bits` and `threshold_bits` count the bits of the parameter memories (the
MVUs' weights, the thresholds and lookup tables). On UltraScale+ parts with UltraRAM (URAM288,
4K x 72 bits each) a deep weight memory goes to URAM instead of block RAM where that saves block
RAM (`uram_choice`): when it needs at least `URAM_MIN_SAVING` 18 Kb BRAMs per URAM it would take,
the memories that save the most per URAM first, while URAMs are left. A build for such a part
does the same (`--weight-memory auto`): those MVUs' weights are loaded after reset from the weight
stream, since URAM has no contents in the bitstream. Thresholds and lookup tables stay in block
RAM (they are ROMs).

DRAM. A unit that streams its weights from DRAM reads `dram_bytes_per_frame` each frame; at the
part's frame rate that is `est_dram_mbytes_per_s`, against `dram_mbytes_per_s`, the bandwidth a
design on the part may plan on: the least of the boards that carry the part (`hwgen.deploy.boards`,
each board's `[dram]`), so a design that fits one of them fits each.
"""

from __future__ import annotations

from hwgen.deploy.boards import BOARDS
from hwgen.parts import FIT_PARTS, PARTS, Part, lookup_part
from hwgen.units.base import Unit
from hwgen.units.datapath import memory_bram18, uram_count

#: 18 Kb BRAMs a memory must take per URAM it would take before it is counted in URAM
URAM_MIN_SAVING = 4


def uram_eligible(depth: int, width: int) -> bool:
    """Whether a weight memory saves enough block RAM in UltraRAM to go there (`URAM_MIN_SAVING`)."""
    return memory_bram18(depth, width) >= URAM_MIN_SAVING * uram_count(depth, width)


def uram_choice(memories: list[tuple[int, int]], urams_left: int) -> list[bool]:
    """Which of the weight memories (depth, width) go to UltraRAM on a part with `urams_left`."""
    costs = [(memory_bram18(d, w), uram_count(d, w)) for d, w in memories]
    order = sorted((i for i, (d, w) in enumerate(memories) if uram_eligible(d, w)),
                   key=lambda i: (-costs[i][0] / costs[i][1], i))
    chosen = [False] * len(memories)
    for i in order:
        if costs[i][1] <= urams_left:
            urams_left -= costs[i][1]
            chosen[i] = True
    return chosen


def dram_mbytes_per_s(part: Part) -> float:
    """The DRAM bandwidth a design on `part` may plan on: the least of the boards that carry it
    (0 where none does: no DRAM to stream from)."""
    return min((b.dram_mbytes_per_s for b in BOARDS.values() if lookup_part(b.part).device == part.device),
               default=0.0)


def parts_table(units: list[Unit], max_cycles: int) -> list[dict]:
    """One entry per part of `FIT_PARTS`, as `report.json` holds them."""
    return [part_fit(units, max_cycles, PARTS[name]) for name in FIT_PARTS]


def part_fit(units: list[Unit], max_cycles: int, part: Part) -> dict:
    memories = [m for unit in units for m in unit.parameter_memories()]
    luts = sum(int(u.est_luts()) for u in units)
    dsps = sum(int(u.est_dsps()) for u in units)
    # block RAM as if every weight were in block RAM, then the part's UltraRAM choice (of the
    # weight memories not held in LUTs)
    weights = [memory for unit in units for memory in unit.ram_weight_memories()]
    bram18 = sum(int(u.est_brams()) for u in units) + sum(
        memory_bram18(d, w) for u in units if u.est_urams() for d, w, role in u.parameter_memories()
        if role == "weights")
    uram = 0
    if part.uram:
        for (d, w), chosen in zip(weights, uram_choice(weights, part.uram)):
            if chosen:
                uram += uram_count(d, w)
                bram18 -= memory_bram18(d, w)
    fps = part.default_clock_mhz * 1e6 / max_cycles
    dram_need = sum(u.dram_bytes_per_frame() for u in units) * fps / 1e6
    dram_have = dram_mbytes_per_s(part)
    fits = (luts <= part.luts and bram18 <= part.bram18 and uram <= part.uram and dsps <= part.dsp
            and dram_need <= dram_have)
    return {
        "part": part.device,
        "clock_mhz": part.default_clock_mhz,
        "luts": part.luts, "bram18": part.bram18, "uram": part.uram, "dsp": part.dsp,
        "dram_mbytes_per_s": round(dram_have, 1),
        "weight_bits": sum(d * w for d, w, role in memories if role == "weights"),
        "threshold_bits": sum(d * w for d, w, role in memories if role != "weights"),
        "est_luts": luts, "est_bram18": bram18, "est_uram": uram, "est_dsps": dsps,
        "est_dram_mbytes_per_s": round(dram_need, 1),
        "fits": fits,
        "fps": fps,
    }


def overuse(fit: dict) -> dict[str, tuple[int, int]]:
    """The resources a `part_fit` entry needs beyond its part: {name: (needed, the part's)}, the
    most overused first."""
    pairs = {"LUTs": (fit["est_luts"], fit["luts"]), "BRAM18": (fit["est_bram18"], fit["bram18"]),
             "URAM": (fit["est_uram"], fit["uram"]), "DSPs": (fit["est_dsps"], fit["dsp"]),
             "DRAM MB/s": (fit["est_dram_mbytes_per_s"], fit["dram_mbytes_per_s"])}
    over = {name: need for name, need in pairs.items() if need[0] > need[1]}
    return dict(sorted(over.items(), key=lambda item: -item[1][0] / max(item[1][1], 1)))

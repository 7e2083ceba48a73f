"""The per-part fit table: capacities, on-chip parameter memory, URAM counting, frame rates."""

import numpy as np
from qonnx.core.datatype import DataType

from hwgen.fit import URAM_MIN_SAVING, part_fit, parts_table, uram_count
from hwgen.parts import FIT_PARTS, PARTS
from hwgen.units.datapath import memory_bram18
from hwgen.units.mvu import MVU

BINARY = DataType["BINARY"]


def deep_mvu(mw: int = 4608, mh: int = 512, pe: int = 8, simd: int = 64) -> MVU:
    """A 3x3 x 512 -> 512 binary layer's MVU: 2.4 M weight bits in a 4608-deep, 512-wide ROM."""
    w = np.random.default_rng(0).integers(0, 2, (mw, mh))
    return MVU(mw, mh, pe, simd, BINARY, BINARY, w, None, DataType["INT16"])


def test_weight_bits_and_capacities_per_part():
    mvu = deep_mvu()
    table = parts_table([mvu], mvu.est_cycles())
    assert [row["part"] for row in table] == list(FIT_PARTS) == ["xc7z020", "xczu3eg", "xczu7ev", "xck26"]
    for row in table:
        part = PARTS[row["part"]]
        assert row["weight_bits"] == 4608 * 512 and row["threshold_bits"] == 0
        assert (row["luts"], row["bram18"], row["uram"], row["dsp"]) == (part.luts, 2 * part.bram36, part.uram, part.dsp)
        assert row["fps"] == part.default_clock_mhz * 1e6 / mvu.est_cycles()
        assert row["est_luts"] == mvu.est_luts()


def test_deep_weights_go_to_uram_where_the_part_has_it():
    mvu = deep_mvu()
    depth, width = mvu.NF * mvu.SF, mvu.PE * mvu.SIMD  # 4608 x 512
    brams, urams = memory_bram18(depth, width), uram_count(depth, width)
    assert (brams, urams) == (135, 16) and brams >= URAM_MIN_SAVING * urams
    z020, ku = part_fit([mvu], 1, PARTS["xc7z020"]), part_fit([mvu], 1, PARTS["xck26"])
    assert (z020["est_uram"], z020["est_bram18"]) == (0, mvu.est_brams())
    assert (ku["est_uram"], ku["est_bram18"]) == (urams, mvu.est_brams() - brams)


def test_a_part_without_enough_memory_does_not_fit():
    layers = [deep_mvu() for _ in range(12)]  # weights: 12 x 135 BRAM18, or 12 x 16 URAM
    per_layer = layers[0].est_brams()  # the weights' and the input buffer's
    weights = memory_bram18(4608, 512)
    rows = {row["part"]: row for row in parts_table(layers, 1)}
    assert not rows["xc7z020"]["fits"] and rows["xc7z020"]["est_bram18"] == 12 * per_layer
    # the KV260 has 64 URAM: four layers' weights move there, the rest stays in its 288 BRAM18
    assert rows["xck26"]["est_uram"] == 64 and rows["xck26"]["est_bram18"] == 12 * per_layer - 4 * weights
    assert not rows["xck26"]["fits"]


def test_shallow_memories_stay_in_block_ram():
    small = MVU(64, 64, 8, 8, BINARY, BINARY, np.zeros((64, 64), int), None, DataType["INT8"])
    row = part_fit([small], 1, PARTS["xczu7ev"])
    assert row["est_uram"] == 0 and row["est_bram18"] == small.est_brams()


def test_dram_bandwidth_is_a_resource_of_each_part():
    """A unit that reads its weights from DRAM needs its bytes per frame times the part's frame
    rate; the part offers the least of its boards' bandwidth (xc7z020: the PYNQ-Z1's), and a
    design that needs more does not fit, naming DRAM as what it overuses."""
    from dataclasses import dataclass

    from hwgen.fit import dram_mbytes_per_s, overuse

    @dataclass(frozen=True, eq=False)
    class Streamed(MVU):
        def dram_bytes_per_frame(self) -> int:
            return 1_000_000

    mvu = Streamed(64, 64, 8, 8, BINARY, BINARY, np.zeros((64, 64), int), None, DataType["INT8"])
    assert dram_mbytes_per_s(PARTS["xc7z020"]) == 0.7 * 2100  # PYNQ-Z1: DDR3 x16 at 1,050 MT/s
    assert dram_mbytes_per_s(PARTS["xc7z010"]) == 0  # no board of ours: no DRAM to plan on
    row = part_fit([mvu], 100_000, PARTS["xc7z020"])  # 1,000 FPS at 100 MHz: 1,000 MB/s
    assert (row["est_dram_mbytes_per_s"], row["dram_mbytes_per_s"], row["fits"]) == (1000.0, 1470.0, True)
    row = part_fit([mvu], 50_000, PARTS["xc7z020"])
    assert not row["fits"] and overuse(row) == {"DRAM MB/s": (2000.0, 1470.0)}
    assert part_fit([mvu.__class__.__mro__[1](64, 64, 8, 8, BINARY, BINARY, np.zeros((64, 64), int), None,
                                               DataType["INT8"])], 1, PARTS["xc7z020"])["est_dram_mbytes_per_s"] == 0

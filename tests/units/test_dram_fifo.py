"""DramFifo through Verilator against the bench's DRAM, which it both writes and reads: every
beat comes out in order, with and without stalls on the streams and on the DRAM, at a beat per
clock; a frame whose last word is part full comes out whole (the flush); a DRAM that never
answers is an error naming the master."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim.verilator import DeadlockError, DramImage, simulate_unit
from hwgen.units.dram_fifo import DramFifo

OFFSET = 8192


def dram_for(unit: DramFifo) -> DramImage:
    """A DRAM with noise where the ring lies (nothing may be read before it is written)."""
    return DramImage(np.random.default_rng(5).integers(0, 256, OFFSET + unit.dram_image_bytes(), dtype=np.uint8))


@pytest.mark.parametrize("dtype, elems, beats, data_bits", [
    ("INT8", 1, 700, 64),     # 7 beats a word, 100 words a frame: whole bursts and a part burst
    ("UINT4", 3, 45, 128),    # 12-bit beats, 9 a word: the frame's last word part full
])
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_every_beat_in_order(dtype, elems, beats, data_bits, stall, verilator_cache):
    dt = DataType[dtype]
    unit = DramFifo(dt, elems, beats, 300, data_bits, OFFSET)
    x = np.random.default_rng(beats).integers(dt.min(), dt.max() + 1, (5, elems * beats))
    out, result = simulate_unit(unit, x, stall_prob=stall, seed=9, cache_dir=verilator_cache, dram=dram_for(unit))
    np.testing.assert_array_equal(out, x)
    if stall == 0.0 and beats == 700:  # a burst of writes and one of reads in flight keep up with a beat a clock
        assert result.cycles_per_frame == pytest.approx(unit.est_cycles(), rel=0.02)
        assert unit.dram_bytes_per_frame() == 2 * 100 * 8


def test_a_frame_that_ends_while_the_writes_wait_loses_nothing(verilator_cache):
    """Frames of three 24-bit beats, two a word, at a beat a clock: one write burst in flight
    through a slow DRAM empties the write FIFO slower than they fill it, and a frame's last beat,
    alone in its word, often comes while that FIFO is full. The word waits for room and the stream
    with it (a word closed by a frame's end once went to a full FIFO and was lost: 598 of 600
    beats came out, then a deadlock)."""
    unit = DramFifo(DataType["INT8"], 3, 3, 300, 64, OFFSET)
    x = np.random.default_rng(3).integers(-128, 128, (200, 3 * 3))
    slow = DramImage(dram_for(unit).image, latency=60)
    out, _ = simulate_unit(unit, x, cache_dir=verilator_cache, dram=slow, max_idle=5000)
    np.testing.assert_array_equal(out, x)


def test_a_dram_that_never_answers_is_named(verilator_cache):
    unit = DramFifo(DataType["INT8"], 1, 64, 64, 64, OFFSET)
    x = np.zeros((2, 64), np.int64)
    silent = DramImage(np.zeros(OFFSET + unit.dram_image_bytes(), np.uint8), silent=True)
    with pytest.raises(DeadlockError, match=r"DRAM master m_axi0: its write request at 0x10002000 is not taken"):
        simulate_unit(unit, x, cache_dir=verilator_cache, dram=silent, max_idle=3000)


@pytest.mark.parametrize("kwargs, problem", [
    ({"data_bits": 48}, "data_bits must be one of"),
    ({"offset": 100}, "offset must be a multiple of 4096"),
    ({"depth": 1000, "offset": 4096}, r"offset must be a multiple of 8192 bytes \(4 KB and its ring's size\)"),
    ({"elems_per_beat": 8}, "do not fit a 64-bit bus word"),
])
def test_bad_parameters_are_named(kwargs, problem):
    args = {"dtype": DataType["INT8"], "elems_per_beat": 1, "beats_per_frame": 10, "depth": 8, "data_bits": 64,
            "offset": 0, **kwargs}
    with pytest.raises(HwgenError, match=problem):
        DramFifo(**args)

"""DramReader through Verilator against the bench's DRAM: every word of the image once per token,
at one word per clock through the read latency, with and without stalls on the streams and on
the DRAM; a DRAM that never answers and a read outside the image are errors naming the master."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.errors import HwgenError
from hwgen.sim.verilator import DeadlockError, DramImage, SimulationError, simulate_unit
from hwgen.units.dram_reader import DramReader

OFFSET = 8192


def dram_holding(unit: DramReader, spare: int = 64) -> DramImage:
    """A DRAM with `unit`'s image at its offset and noise around it."""
    memory = np.random.default_rng(7).integers(0, 256, OFFSET + unit.image.size + spare, dtype=np.uint8)
    memory[OFFSET:OFFSET + unit.image.size] = unit.image
    return DramImage(memory)


@pytest.mark.parametrize("data_bits, words", [(64, 37), (128, 48)])  # a short last burst; whole bursts
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_every_word_once_per_frame(data_bits, words, stall, verilator_cache):
    image = np.random.default_rng(words).integers(0, 256, words * data_bits // 8, dtype=np.uint8)
    unit = DramReader(image, data_bits, OFFSET)
    tokens = np.ones((6, 1), np.int64)
    out, result = simulate_unit(unit, tokens, stall_prob=stall, seed=3, cache_dir=verilator_cache,
                                dram=dram_holding(unit))
    np.testing.assert_array_equal(out, unit.reference(tokens))
    assert out.shape == (6, image.size)
    if stall == 0.0:  # four bursts in flight hide the DRAM's 24 cycles: one word per clock
        assert result.cycles_per_frame == unit.est_cycles() == words
        assert unit.dram_bytes_per_frame() == image.size


def test_a_dram_that_never_answers_is_named(verilator_cache):
    unit = DramReader(np.zeros(8 * 20, np.uint8), 64, OFFSET)
    dram = dram_holding(unit)
    silent = DramImage(dram.image, silent=True)
    with pytest.raises(DeadlockError, match=r"DRAM master m_axi0: its read request at 0x10002000 is not taken"):
        simulate_unit(unit, np.ones((2, 1), np.int64), cache_dir=verilator_cache, dram=silent, max_idle=500)


def test_a_read_beyond_the_image_is_named(verilator_cache):
    unit = DramReader(np.zeros(8 * 20, np.uint8), 64, OFFSET)
    short = DramImage(np.zeros(OFFSET + 8 * 10, np.uint8))
    with pytest.raises(SimulationError, match=r"DRAM master m_axi0: a read of 128 bytes at 0x10002000 lies outside "
                                              r"the DRAM image \[0x10000000, 0x10002050\)"):
        simulate_unit(unit, np.ones((1, 1), np.int64), cache_dir=verilator_cache, dram=short)


@pytest.mark.parametrize("kwargs, problem", [
    ({"data_bits": 48}, "data_bits must be one of"),
    ({"offset": 100}, "offset must be a multiple of 4096"),
    ({"burst": 12}, "burst must be a power of two"),
    ({"image": np.zeros(12, np.uint8)}, "whole 8-byte words"),
    ({"outstanding": 0}, "outstanding must be at least 1"),
])
def test_bad_parameters_are_named(kwargs, problem):
    args = {"image": np.zeros(64, np.uint8), "data_bits": 64, "offset": 0, **kwargs}
    with pytest.raises(HwgenError, match=problem):
        DramReader(**args)

"""DramMVU through Verilator against the bench's DRAM: the on-chip MVU's outputs for every kind
of arithmetic (XNOR, +-1 weights on 8-bit inputs, low-bit integers), in one pass or several, with
and without stalls on the streams and on the DRAM, each weight read once per pass, and its cycles
per frame exactly as estimated (compute-bound and bus-bound shapes)."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim.verilator import DramImage, simulate_unit
from hwgen.units.dram_mvu import DramMVU, bus_words_per_pass
from hwgen.units.mvu import accumulator_dtype, weight_words

OFFSET = 8192
B, BIPOLAR, INT8, INT2 = (DataType[n] for n in ("BINARY", "BIPOLAR", "INT8", "INT2"))
INT3, INT4, INT5, INT6 = (DataType[f"INT{n}"] for n in (3, 4, 5, 6))


def dram_mvu(idt, wdt, mw: int, mh: int, pe: int, simd: int, vectors: int, bus: int, seed: int,
             passes: int = 1) -> DramMVU:
    rng = np.random.default_rng(seed)
    w = rng.choice([-1, 1], (mw, mh)) if wdt == BIPOLAR else rng.integers(int(wdt.min()), int(wdt.max()) + 1,
                                                                            (mw, mh))
    return DramMVU(mw, mh, pe, simd, idt, wdt, w, None, accumulator_dtype(idt, wdt, w), 0, vectors, bus, OFFSET,
                   passes)


def dram_for(unit: DramMVU) -> DramImage:
    image = unit.dram_image()
    memory = np.zeros(OFFSET + image.size, np.uint8)
    memory[OFFSET:] = image
    return DramImage(memory)


@pytest.mark.parametrize("idt, wdt, mw, mh, pe, simd, vectors, bus, passes, cycles", [
    (B, B, 64, 48, 16, 16, 2, 64, 1, 48),  # bus-bound: 4 bus words per weight word, 2 vectors
    (B, B, 64, 48, 16, 16, 9, 128, 1, 109),  # compute-bound, odd number of tiles: 3 x 9 x 4 steps + 1
    (B, B, 64, 48, 16, 16, 9, 128, 3, 111),  # three passes of 3 vectors: 3 x (3 x 3 x 4 + 1)
    (INT8, BIPOLAR, 32, 24, 8, 8, 5, 64, 1, 61),  # a first layer's +-1 weights on 8-bit inputs
    (INT8, BIPOLAR, 32, 24, 8, 8, 6, 64, 6, 78),  # a pass per vector: the weights read 6 times a frame
    (INT2, INT2, 32, 16, 16, 4, 3, 64, 1, 25),  # one tile
    (B, B, 32, 16, 4, 8, 3, 64, 1, 49),  # 32-bit weight words, two to a bus word
    (INT6, INT5, 12, 5, 1, 1, 2, 64, 1, 121),  # 5-bit words in 8-bit slots; a pass ends mid bus word
    (INT6, INT5, 12, 5, 1, 1, 2, 64, 2, 122),  # the same in two passes: each starts a bus word
    (INT3, INT4, 16, 6, 3, 8, 2, 64, 1, 9),  # 96-bit words padded to two bus words
])
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_the_on_chip_mvus_outputs_with_weights_from_dram(idt, wdt, mw, mh, pe, simd, vectors, bus, passes, cycles,
                                                         stall, verilator_cache):
    unit = dram_mvu(idt, wdt, mw, mh, pe, simd, vectors, bus, seed=mw + vectors, passes=passes)
    x = np.random.default_rng(vectors).integers(int(idt.min()), int(idt.max()) + 1, (3, vectors * mw))
    out, result = simulate_unit(unit, x, stall_prob=stall, seed=2, cache_dir=verilator_cache, dram=dram_for(unit))
    np.testing.assert_array_equal(out, unit.reference(x))
    padded = bus_words_per_pass(unit.NF * unit.SF, unit.word_bits, bus) * bus // 8  # each word in its slot
    assert unit.dram_bytes_per_frame() == passes * padded  # each weight once per pass
    assert padded == mw * mh * wdt.bitwidth() // 8 or unit.word_bits % bus
    if stall == 0.0:  # the three sides overlap: the slowest of them, exactly
        assert result.cycles_per_frame == cycles == unit.est_cycles()


@pytest.mark.parametrize("mw, mh, pe, simd, vectors, bus, passes, cycles", [
    (64, 48, 16, 16, 9, 128, 1, 145),  # a pass's input (36 beats) longer than its output (27)
    (64, 48, 16, 16, 9, 128, 3, 150),  # three passes: 3 x (37 + 12 + 1); estimated 156
    (256, 64, 4, 32, 16, 64, 2, 2318),  # output longer: 2 x (1,025 + 128 + 6)
    (256, 64, 4, 32, 16, 128, 4, 2332),
    (64, 48, 16, 16, 2, 64, 1, 48),  # bus-bound: the tiles load while the banks turn over
])
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_one_bank_of_input_and_output_halves_the_buffers(mw, mh, pe, simd, vectors, bus, passes, cycles, stall,
                                                         verilator_cache):
    """`banks=1`: the same outputs, half the buffers' block RAM, and per pass the compute then the
    longer of the next pass's input and this one's output (bus-bound: the bus), exactly as
    estimated or up to two cycles a pass over."""
    from dataclasses import replace

    double = dram_mvu(B, B, mw, mh, pe, simd, vectors, bus, seed=mw + vectors, passes=passes)
    unit = replace(double, banks=1)
    x = np.random.default_rng(vectors).integers(0, 2, (4, vectors * mw))
    out, result = simulate_unit(unit, x, stall_prob=stall, seed=2, cache_dir=verilator_cache, dram=dram_for(unit))
    np.testing.assert_array_equal(out, unit.reference(x))
    if stall == 0.0:
        assert result.cycles_per_frame == cycles and 0 <= unit.est_cycles() - cycles <= 2 * passes
    assert unit.held_fraction() == 2 / passes and double.held_fraction() == 3 / passes


def test_one_bank_takes_half_the_block_ram_of_two():
    """A ReActNet-A 3x3 layer at 14x14 (4,608 x 512, V = 196) in 4 passes: the input and output
    banks are most of its block RAM."""
    from dataclasses import replace

    rng = np.random.default_rng(0)
    two = DramMVU(4608, 512, 2, 32, B, B, rng.integers(0, 2, (4608, 512)), None, DataType["INT14"], 0, 196, 64,
                  OFFSET, passes=4)
    one = replace(two, banks=1)
    assert (two.est_brams(), one.est_brams()) == (79, 41)
    with pytest.raises(HwgenError, match="DramMVU: banks=3 must be 1 or 2"):
        replace(two, banks=3)


def test_weight_words_take_slots_of_whole_bus_words_or_powers_of_two():
    """A 32-bit word takes half a 64-bit bus word, a 5-bit one a byte (the last bus word of the
    image padded), a 96-bit one two bus words; passes must divide the vectors."""
    from hwgen.units.dram_mvu import slot_bits_of

    assert [slot_bits_of(bits, 64) for bits in (1, 5, 32, 64, 96, 128)] == [1, 8, 32, 64, 128, 128]
    assert bus_words_per_pass(60, 5, 64) == 8 and bus_words_per_pass(4, 96, 64) == 8
    unit = dram_mvu(INT6, INT5, 12, 5, 1, 1, 2, 64, seed=0)
    image = unit.dram_image()
    assert image.size == 8 * 8 and not image[60:].any()
    np.testing.assert_array_equal(image[:60], [w & 31 for w in weight_words(unit._mvu)])
    wide = dram_mvu(INT3, INT4, 16, 6, 3, 8, 2, 64, seed=0)
    assert wide.dram_image_bytes() == 4 * 16 and not wide.dram_image().reshape(4, 16)[:, 12:].any()
    with pytest.raises(HwgenError, match=r"DramMVU: passes=4 must divide vectors_per_frame=6"):
        dram_mvu(B, B, 64, 16, 4, 16, 6, 64, seed=0, passes=4)


@pytest.mark.parametrize("steps, odt", [(1, "BINARY"), (3, "UINT2")])
def test_thresholds_of_each_tile_on_its_accumulators(steps, odt, verilator_cache):
    """A binary layer with its BatchNorm-and-sign folded into thresholds (or 3 of them: a 2-bit
    output): the output frame holds the thresholded values."""
    rng = np.random.default_rng(steps)
    mw, mh, vectors = 64, 48, 5
    w = rng.integers(0, 2, (mw, mh))
    thresholds = np.sort(rng.integers(20, 45, (mh, steps)), axis=1)
    unit = DramMVU(mw, mh, 16, 16, B, B, w, thresholds, DataType[odt], 0, vectors, 64, OFFSET)
    x = rng.integers(0, 2, (3, vectors * mw))
    for stall in (0.0, 0.3):
        out, _ = simulate_unit(unit, x, stall_prob=stall, seed=4, cache_dir=verilator_cache, dram=dram_for(unit))
        np.testing.assert_array_equal(out, unit.reference(x))
    assert unit.parameter_memories() == [(3, 16 * steps * 7, "thresholds")]


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_products_in_luts_with_weights_from_dram(stall, verilator_cache):
    """8-bit x 8-bit products built in LUTs (where folding freed the DSPs) in the weight-stationary
    unit: the same outputs, no DSP, and the cycles as estimated."""
    rng = np.random.default_rng(4)
    w = rng.integers(-128, 128, (32, 16))
    unit = DramMVU(32, 16, 4, 4, INT8, INT8, w, None, accumulator_dtype(INT8, INT8, w), 0, 3, 64, OFFSET,
                   products_in_luts=True)
    assert unit.est_dsps() == 0 and unit._mvu.products_in_luts
    x = rng.integers(-128, 128, (3, 3 * 32))
    out, result = simulate_unit(unit, x, stall_prob=stall, seed=2, cache_dir=verilator_cache, dram=dram_for(unit))
    np.testing.assert_array_equal(out, unit.reference(x))
    if stall == 0.0:
        assert result.cycles_per_frame == unit.est_cycles()


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_packed_products_with_weights_from_dram(stall, verilator_cache):
    """UINT8 x INT8 products two to a DSP (where folding freed the DSPs) in the weight-stationary
    unit, PE 3 (the last lane alone): the same outputs, two DSPs a SIMD lane, the cycles as
    estimated."""
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, (32, 12))
    uint8 = DataType["UINT8"]
    unit = DramMVU(32, 12, 3, 4, uint8, INT8, w, None, accumulator_dtype(uint8, INT8, w), 0, 3, 64, OFFSET,
                   packed_products=True)
    assert unit.est_dsps() == 2 * 4 and unit._mvu.packed_products
    x = rng.integers(0, 256, (3, 3 * 32))
    out, result = simulate_unit(unit, x, stall_prob=stall, seed=2, cache_dir=verilator_cache, dram=dram_for(unit))
    np.testing.assert_array_equal(out, unit.reference(x))
    if stall == 0.0:
        assert result.cycles_per_frame == unit.est_cycles()

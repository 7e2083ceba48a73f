"""FrameMVU through Verilator against the bench's DRAM: the sliding window's and the on-chip MVU's
outputs, tile by tile, for padded and strided 3x3 windows, 1x1 layers, 8-bit inputs, thresholds and
an input that arrives tile by tile, with and without stalls on the streams and on the DRAM; each
weight read once a frame, and the cycles per frame exactly as estimated."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim.verilator import DramImage, simulate_unit
from hwgen.units.dram_mvu import DramMVU
from hwgen.units.frame_mvu import FrameMVU
from hwgen.units.mvu import accumulator_dtype

OFFSET = 4096
B, BIPOLAR, INT2, INT8 = (DataType[n] for n in ("BINARY", "BIPOLAR", "INT2", "INT8"))


def frame_mvu(idt, xdt, wdt, hw: tuple[int, int], channels: int, kernel: int, stride: int, pads: tuple[int, ...],
              mh: int, pe: int, simd: int, seed: int, steps: int = 0, **kw) -> FrameMVU:
    rng = np.random.default_rng(seed)
    mw = kernel * kernel * channels
    w = rng.choice([-1, 1], (mw, mh)) if wdt == BIPOLAR else rng.integers(int(wdt.min()), int(wdt.max()) + 1,
                                                                            (mw, mh))
    acc = accumulator_dtype(xdt, wdt, w)
    thresholds, odt = None, acc
    if steps:
        thresholds = np.sort(rng.integers(mw // 3, 2 * mw // 3, (mh, steps)), axis=1)
        odt = B if steps == 1 else DataType[f"UINT{steps.bit_length()}"]
    return FrameMVU(*hw, channels, kernel, kernel, stride, stride, *pads, mh, pe, simd, idt, xdt, wdt, w, thresholds,
                    odt, offset=OFFSET, **kw)


def dram_for(unit: FrameMVU) -> DramImage:
    memory = np.zeros(OFFSET + unit.dram_image().size, np.uint8)
    memory[OFFSET:] = unit.dram_image()
    return DramImage(memory)


CASES = {
    # name: (input, window, weight dtypes, (H, W), channels, kernel, stride, pads (t, l, b, r), MH, PE, SIMD, steps)
    "3x3-padded": (B, B, B, (6, 5), 8, 3, 1, (1, 1, 1, 1), 8, 4, 4, 0),
    "3x3-stride-2": (B, B, B, (7, 7), 4, 3, 2, (1, 1, 1, 1), 6, 2, 4, 0),
    "3x3-stride-2-uneven-pads": (B, B, B, (8, 6), 4, 3, 2, (1, 0, 0, 1), 4, 4, 2, 0),
    "1x1-thresholds": (B, B, B, (4, 4), 16, 1, 1, (0, 0, 0, 0), 12, 4, 8, 1),
    "3x3-two-bit-out": (B, B, B, (5, 5), 4, 3, 1, (1, 1, 1, 1), 8, 2, 4, 3),
    "8-bit-inputs": (INT8, INT8, BIPOLAR, (5, 4), 4, 3, 1, (1, 1, 1, 1), 4, 2, 2, 0),
    "bipolar-padded-with-zero": (BIPOLAR, INT2, BIPOLAR, (4, 4), 4, 3, 1, (1, 1, 1, 1), 4, 4, 4, 0),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_the_windows_and_the_mvu_tile_by_tile_with_weights_read_once(name, stall, verilator_cache):
    idt, xdt, wdt, hw, channels, kernel, stride, pads, mh, pe, simd, steps = CASES[name]
    unit = frame_mvu(idt, xdt, wdt, hw, channels, kernel, stride, pads, mh, pe, simd, seed=len(name), steps=steps)
    x = np.random.default_rng(3).integers(int(idt.min()), int(idt.max()) + 1, (3, hw[0] * hw[1] * channels))
    if idt == BIPOLAR:
        x = 2 * (x > 0) - 1
    out, result = simulate_unit(unit, x, stall_prob=stall, seed=2, cache_dir=verilator_cache, dram=dram_for(unit))
    np.testing.assert_array_equal(out, unit.reference(x))
    assert unit.dram_bytes_per_frame() == unit.dram_image().size  # once a frame
    assert unit.dram_image().size - unit.MW * unit.MH * wdt.bitwidth() // 8 < 8  # the weights, the last bus word padded
    if stall == 0.0:
        assert result.cycles_per_frame == unit.est_cycles() == unit.NF * unit.pixels * unit.SF + 1


def test_the_output_is_the_mvus_tile_by_tile():
    """Beat (nf, p) holds channels nf x PE .. of pixel p: the on-chip pair's output reordered."""
    from hwgen.units.mvu import MVU

    unit = frame_mvu(B, B, B, (4, 4), 4, 3, 1, (1, 1, 1, 1), 6, 2, 4, seed=0)
    x = np.random.default_rng(0).integers(0, 2, (2, 4 * 4 * 4))
    mvu = MVU(unit.MW, 6, 2, 4, B, B, unit.weights, None, unit.output_dtype, vectors_per_frame=16)
    pixel_major = mvu.reference(unit._window.reference(x)).reshape(2, 16, 6)
    np.testing.assert_array_equal(unit.reference(x).reshape(2, 3, 16, 2), pixel_major.reshape(2, 16, 3, 2)
                                  .transpose(0, 2, 1, 3))


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_two_units_chain_tile_by_tile(stall, verilator_cache):
    """The second takes the first's output as it comes (channel-major, its SIMD the first's PE):
    the same as the first's output put back in pixel order and sent pixel by pixel."""
    first = frame_mvu(B, B, B, (5, 5), 4, 3, 1, (1, 1, 1, 1), 8, 4, 4, seed=1, steps=1)
    second = frame_mvu(B, B, B, (5, 5), 8, 3, 1, (1, 1, 1, 1), 4, 2, 4, seed=2, input_groups=first.output_groups)
    x = np.random.default_rng(5).integers(0, 2, (3, 5 * 5 * 4))
    middle = first.reference(x)
    out, result = simulate_unit(second, middle, stall_prob=stall, seed=3, cache_dir=verilator_cache,
                                dram=dram_for(second))
    np.testing.assert_array_equal(out, second.reference(middle))
    pixel_major = middle.reshape(3, 2, 25, 4).transpose(0, 2, 1, 3).reshape(3, -1)
    from dataclasses import replace
    np.testing.assert_array_equal(out, replace(second, input_groups=1).reference(pixel_major))
    if stall == 0.0:
        assert result.cycles_per_frame == second.est_cycles()


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_an_input_in_two_channel_groups(stall, verilator_cache):
    """Four beats a pixel (SIMD 2 of 8 channels) in two groups: channels 0-3 of every pixel, then
    4-7."""
    from hwgen.streams import from_channel_last

    unit = frame_mvu(B, B, B, (4, 3), 8, 3, 2, (1, 1, 0, 0), 4, 4, 2, seed=4, input_groups=2)
    image = np.random.default_rng(6).integers(0, 2, (3, 12, 8))
    grouped = from_channel_last(image, 2)
    out, _ = simulate_unit(unit, grouped, stall_prob=stall, seed=3, cache_dir=verilator_cache, dram=dram_for(unit))
    from dataclasses import replace
    np.testing.assert_array_equal(out, replace(unit, input_groups=1).reference(image.reshape(3, -1)))
    with pytest.raises(HwgenError, match="FrameMVU: input_groups=3 must divide channels=8 into groups"):
        replace(unit, input_groups=3)


@pytest.mark.parametrize("groups", [4, 8])
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_groups_narrower_than_simd_share_the_images_words(groups, stall, verilator_cache):
    """8 channels at SIMD 8 in 4 groups of 2 (or 8 of 1): a beat a group's channels of a pixel,
    written into its slot of the image's word; the input takes P x 8 / lanes beats a frame."""
    from dataclasses import replace

    from hwgen.streams import from_channel_last

    unit = frame_mvu(B, B, B, (4, 4), 8, 3, 1, (1, 1, 1, 1), 4, 2, 8, seed=5, input_groups=groups)
    assert unit.input_lanes == 8 // groups and unit.inputs[0].beats_per_frame == 16 * groups
    image = np.random.default_rng(groups).integers(0, 2, (3, 16, 8))
    out, result = simulate_unit(unit, from_channel_last(image, groups), stall_prob=stall, seed=3,
                                cache_dir=verilator_cache, dram=dram_for(unit))
    np.testing.assert_array_equal(out, replace(unit, input_groups=1).reference(image.reshape(3, -1)))
    if stall == 0.0:
        assert result.cycles_per_frame == unit.est_cycles()


def test_reactnet_a_14x14_layer_holds_the_image_not_its_windows():
    """ReActNet-A's 3x3 512-channel layer at 14x14 (PE 2, SIMD 32): the image's two banks and two
    tiles, against a DramMVU of the same folding that holds 4 vectors a pass and reads the weights
    49 times a frame, or all 196 of them in 288 BRAM18 to read the weights once."""
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2, (4608, 512))
    unit = FrameMVU(14, 14, 512, 3, 3, 1, 1, 1, 1, 1, 1, 512, 2, 32, B, B, B, w, None, DataType["INT14"])
    passes = DramMVU(4608, 512, 2, 32, B, B, w, None, DataType["INT14"], 0, 196, 64, 0, passes=49)
    assert unit.dram_bytes_per_frame() * 49 == passes.dram_bytes_per_frame() == 49 * 4608 * 512 // 8
    assert unit.est_cycles() == passes.est_cycles() - 48 == 256 * 196 * 144 + 1
    one_pass = DramMVU(4608, 512, 2, 32, B, B, w, None, DataType["INT14"], 0, 196, 64, 0)
    assert (unit.est_brams(), passes.est_brams(), one_pass.est_brams()) == (15, 9, 288)


def test_bad_geometry_names_the_parameter():
    with pytest.raises(HwgenError, match="SlidingWindow: SIMD=3 does not divide channels=8"):
        frame_mvu(B, B, B, (4, 4), 8, 3, 1, (1, 1, 1, 1), 4, 2, 3, seed=0)
    with pytest.raises(HwgenError, match="pad_top=3 must be smaller than kernel_h=3"):
        frame_mvu(B, B, B, (4, 4), 8, 3, 1, (3, 1, 1, 1), 4, 2, 4, seed=0)

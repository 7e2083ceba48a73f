"""Thresholding: reference against hand-worked cases, parameter checks, then the gateware in
Verilator bit-exact against the reference (with and without stalls) at one beat per clock."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.units.thresholding import Thresholding

BIPOLAR, INT2, INT4, UINT3 = DataType["BIPOLAR"], DataType["INT2"], DataType["INT4"], DataType["UINT3"]


def test_reference_counts_thresholds_per_channel():
    thr = np.array([[-1, 0, 5], [-20, 20, 30]])
    u = Thresholding(2, 1, INT4, thr, INT2, out_bias=-2, pixels=2)
    # pixel 0: 3 -> 2 thresholds passed -> 0; -8 -> 1 -> -1; pixel 1: -1 -> 1 -> -1; 7 -> 1 -> -1
    assert u.reference(np.array([[3, -8, -1, 7]])).tolist() == [[0, -1, -1, -1]]


def test_reference_bipolar_output():
    u = Thresholding(2, 2, UINT3, np.array([[4], [0]]), BIPOLAR)
    assert u.reference(np.array([[3, 0], [4, 7]])).tolist() == [[-1, 1], [1, 1]]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(PE=3), "PE"),
        (dict(pixels=0), "pixels"),
        (dict(thresholds=np.zeros((3, 1))), "thresholds"),
        (dict(thresholds=np.array([[1, 0]] * 4)), "ascending"),
        (dict(output_dtype=BIPOLAR, thresholds=np.zeros((4, 2))), "threshold"),
        (dict(out_bias=2), "out_bias"),
        (dict(input_dtype=DataType["FLOAT32"]), "input_dtype"),
        (dict(binary_search=True, thresholds_in_luts=True), "thresholds_in_luts applies to the all-at-once form"),
    ],
)
def test_bad_parameters_are_named(kwargs, name):
    params = dict(channels=4, PE=2, input_dtype=INT4, thresholds=np.zeros((4, 3)), output_dtype=DataType["UINT2"])
    params.update(kwargs)
    with pytest.raises(HwgenError, match=name):
        Thresholding(**params)


CASES = {
    # signed input, 3 thresholds (some outside the input range), several pixels, PE < channels
    "int4_t3_pixels": (8, 2, INT4, 3, INT2, -2, 3),
    # unsigned input, bipolar output, all channels per beat
    "uint3_bipolar_pe_all": (6, 6, UINT3, 1, BIPOLAR, 0, 2),
}


@pytest.mark.parametrize("case", CASES)
def test_thresholding_verilator_matches_reference(case, check_unit):
    channels, pe, idt, steps, odt, bias, pixels = CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)))
    thr = np.sort(rng.integers(int(idt.min()) - 3, int(idt.max()) + 4, size=(channels, steps)), axis=1)
    unit = Thresholding(channels, pe, idt, thr, odt, bias, pixels=pixels)
    frames = rng.integers(int(idt.min()), int(idt.max()) + 1, size=(8, pixels * channels))
    check_unit(unit, frames, seed=3)


@pytest.mark.parametrize("binary_search, pe, groups", [(False, 2, 4), (False, 1, 2), (True, 2, 4)])
def test_a_stream_in_channel_groups_reads_each_groups_thresholds(binary_search, pe, groups, check_unit):
    """The sign in front of a weight-stationary convolution's output, channel-major (a group a
    fold) or in between, in both forms: the thresholds follow the order, the values equal the
    channel-last unit's on the same frame reordered (`hwgen.streams`, Order)."""
    from dataclasses import replace

    from hwgen.streams import from_channel_last, to_channel_last

    rng = np.random.default_rng(groups)
    thr = np.sort(rng.integers(-9, 9, size=(8, 3)), axis=1)
    unit = Thresholding(8, pe, INT4, thr, INT2, -2, pixels=5, binary_search=binary_search, channel_groups=groups)
    image = rng.integers(-8, 8, (4, 5, 8))
    frames = from_channel_last(image, groups)
    last = replace(unit, channel_groups=1).reference(image.reshape(4, -1))
    np.testing.assert_array_equal(to_channel_last(unit.reference(frames), 5, 8, groups).reshape(4, -1), last)
    check_unit(unit, frames, seed=7)
    with pytest.raises(HwgenError, match=r"Thresholding: channel_groups=8 must divide the channel folds \(4\)"):
        replace(unit, PE=2, channel_groups=8)


def test_a_threshold_rom_in_luts_matches_the_reference(check_unit):
    """A ROM the memory model puts into block RAM (512 x 9 bits), built from LUTs instead."""
    rng = np.random.default_rng(11)
    thr = np.sort(rng.integers(-140, 140, size=(512, 1)), axis=1)
    unit = Thresholding(512, 1, DataType["INT8"], thr, BIPOLAR, 0, pixels=2, thresholds_in_luts=True)
    assert unit.est_brams() == 0 and Thresholding(512, 1, DataType["INT8"], thr, BIPOLAR, 0, pixels=2).est_brams() == 1
    frames = rng.integers(-128, 128, size=(3, 2 * 512))
    frames[0, :512] = np.clip(thr[:, 0], -128, 127)  # values on a threshold itself
    check_unit(unit, frames, seed=6)


def test_folding_offers_the_rom_in_luts_only_where_it_would_take_block_ram():
    thr = np.zeros((512, 1), dtype=np.int64)
    space = Thresholding(512, 1, DataType["INT8"], thr, BIPOLAR, 0).folding_space()
    in_luts = [k["PE"] for k in space if k["thresholds_in_luts"]]
    assert in_luts == [1, 2, 4, 8, 16, 32]  # at PE 64 the ROM is 8 words deep: LUTs anyway
    assert not any(k["thresholds_in_luts"] for k in Thresholding(64, 1, DataType["INT8"], thr[:64], BIPOLAR, 0)
                   .folding_space())


SEARCH_CASES = {
    # an 8-bit requantization: 255 thresholds over a 12-bit accumulator, two lanes
    "int12_t255": (4, 2, DataType["INT12"], 255, DataType["INT8"], -128, 3),
    # 5 thresholds (3 stages, two padded "never" thresholds), unsigned input, bipolar-free
    "uint6_t5": (6, 3, DataType["UINT6"], 5, DataType["UINT3"], 0, 2),
    # one threshold, bipolar output: a single stage
    "int4_t1_bipolar": (4, 4, INT4, 1, BIPOLAR, 0, 2),
    # thresholds repeated and beyond the input range (counts that skip levels)
    "int4_t7_edges": (2, 1, INT4, 7, DataType["UINT3"], 0, 4),
}


@pytest.mark.parametrize("case", SEARCH_CASES)
def test_binary_search_matches_reference(case, check_unit):
    channels, pe, idt, steps, odt, bias, pixels = SEARCH_CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)))
    thr = np.sort(rng.integers(int(idt.min()) - 3, int(idt.max()) + 4, size=(channels, steps)), axis=1)
    unit = Thresholding(channels, pe, idt, thr, odt, bias, pixels=pixels, binary_search=True)
    frames = rng.integers(int(idt.min()), int(idt.max()) + 1, size=(8, pixels * channels))
    on = np.clip(thr[:, steps // 2], int(idt.min()), int(idt.max()))
    frames[0, :channels] = on  # values on a threshold itself
    assert np.array_equal(unit.reference(frames),
                          Thresholding(channels, pe, idt, thr, odt, bias, pixels=pixels).reference(frames))
    check_unit(unit, frames, seed=4)


def test_binary_search_is_cheaper_for_an_8_bit_requantization():
    thr = np.sort(np.random.default_rng(0).integers(-2000, 2000, size=(64, 255)), axis=1)
    parallel = Thresholding(64, 4, DataType["INT12"], thr, DataType["INT8"], -128)
    search = Thresholding(64, 4, DataType["INT12"], thr, DataType["INT8"], -128, binary_search=True)
    assert search.search_stages == 8
    # 8 comparators per lane instead of 255; the ROMs narrow (one threshold wide) instead of 255 wide
    assert search.est_luts() * 10 < parallel.est_luts()
    assert search.est_brams() * 20 < parallel.est_brams()

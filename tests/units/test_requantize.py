"""Requantize and its fit: the functions the graph gives (thresholds, tables) found as one or two
affine pieces, exact on every input, and the unit in Verilator on every input value of its type,
bit-exact with its reference, with and without stalls, at one beat per clock."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim.verilator import simulate_unit
from hwgen.units.piecewise import fit_table, fit_thresholds
from hwgen.units.requantize import Requantize, coefficients_of


def rpreluish(x: np.ndarray, channels: int, seed: int) -> np.ndarray:
    """RPReLU between two 8-bit quantizers as the model computes it in float32: shift, PReLU with
    a slope per channel (negative ones too), shift, then round half to even and clamp."""
    rng = np.random.default_rng(seed)
    s_in, s_out = np.float32(0.043), np.float32(0.051)
    shift1 = rng.uniform(-0.5, 0.5, channels).astype(np.float32)
    slope = rng.choice([-0.4, 0.1, 0.25, 0.9], channels).astype(np.float32)
    shift2 = rng.uniform(-0.3, 0.3, channels).astype(np.float32)
    u = x[:, None].astype(np.float32) * s_in + shift1
    v = np.where(u >= 0, u, slope * u) + shift2
    return np.clip(np.round(v / s_out), -128, 127).astype(np.int64).T  # (C, E)


def batchnorm_requantization(channels: int, lo: int, hi: int, steps: int, seed: int) -> np.ndarray:
    """Thresholds of round(clamp(gamma * x + beta)) to `steps` + 1 levels, as float32 BatchNorm and
    rounding make them: the smallest integer x reaching each level (found by evaluating every x)."""
    rng = np.random.default_rng(seed)
    x = np.arange(lo, hi + 1, dtype=np.float32)
    gamma = (rng.random(channels) * 0.5 + 0.02).astype(np.float32)
    beta = ((rng.random(channels) - 0.5) * steps).astype(np.float32)
    levels = np.clip(np.round(x[:, None] * gamma + beta + np.float32(steps / 2)), 0, steps).astype(np.int64)
    thr = np.empty((channels, steps), np.int64)
    for k in range(1, steps + 1):
        reached = levels >= k
        thr[:, k - 1] = np.where(reached.any(axis=0), x[np.argmax(reached, axis=0)].astype(np.int64), hi + 1)
    return thr


def bn_requant_thresholds(channels: int, lo: int, hi: int, seed: int) -> np.ndarray:
    """The 255 thresholds of BatchNorm into an 8-bit quantizer on an integer accumulator: the
    first accumulator value whose (float32) output reaches each level."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.002, 0.02, channels).astype(np.float32)
    bias = rng.uniform(-1, 1, channels).astype(np.float32)
    x = np.arange(lo, hi + 1)
    y = np.clip(np.round((x[:, None].astype(np.float32) * scale + bias) / np.float32(0.05)), -128, 127)
    levels = np.arange(-127, 128)
    return np.array([[lo + int(np.searchsorted(y[:, c], k)) for k in levels] for c in range(channels)])


def test_tables_of_rprelu_are_two_pieces():
    x = np.arange(-128, 128)
    table = rpreluish(x, 16, seed=1)
    fit = fit_table(table, -128, -128, 127)
    form = fit.form
    assert not fit.failed.any() and form.pieces == 2
    assert np.array_equal(form(x[:, None]), table.T)


def test_a_join_rescaling_rounds_half_to_even():
    """A 10-bit sum halved into 8 bits: half of the values land on .5, and the model rounds them to
    even, which no floor of a line does."""
    z = np.arange(-512, 512)
    table = np.clip(np.round(z / 2.0), -128, 127).astype(np.int64)[None, :]
    form = fit_table(table, -512, -128, 127).form
    assert form.half_even is not None and form.half_even.all()
    assert np.array_equal(form(z[:, None])[:, 0], table[0])


def test_thresholds_of_a_batchnorm_are_one_line():
    t = bn_requant_thresholds(8, -3000, 3000, seed=2)
    form = fit_thresholds(t, -3000, 3000, -128, -128, 127)
    assert form is not None and form.pieces == 1


def test_three_monotone_runs_are_named_as_the_reason():
    x = np.arange(12)
    zigzag = np.abs((x % 8) - 4)[None, :]  # down, up, down
    fit = fit_table(zigzag, 0, -128, 127)
    assert fit.failed.tolist() == [True] and "channel 0: 3 monotone runs" in fit.reason


@pytest.mark.parametrize("pe", [1, 4])
def test_unit_on_every_input_value(pe, check_unit):
    """Every INT8 value in every channel, as frames, through the RTL."""
    x = np.arange(-128, 128)
    table = rpreluish(x, 8, seed=3)
    form = fit_table(table, -128, -128, 127).form
    unit = Requantize(8, pe, 256, DataType["INT8"], DataType["INT8"], coefficients_of(form), form.shift)
    frames = np.stack([np.repeat(x, 8), np.repeat(x[::-1], 8)])  # (2, 256 pixels * 8 channels)
    assert np.array_equal(unit.reference(frames[:1]).reshape(256, 8), table.T)
    check_unit(unit, frames)


@pytest.mark.parametrize("pe, groups", [(2, 4), (1, 4), (2, 2)])
def test_a_stream_in_channel_groups_reads_each_groups_coefficients(pe, groups, check_unit):
    """Channel-major (a group a fold: 8 channels at PE 2 in 4 groups, as a weight-stationary
    convolution sends them) and in between: the coefficients follow the order, the values equal
    the channel-last unit's on the same frame reordered (`hwgen.streams`, Order)."""
    from dataclasses import replace

    from hwgen.streams import from_channel_last, to_channel_last

    x = np.arange(-128, 128)
    form = fit_table(rpreluish(x, 8, seed=3), -128, -128, 127).form
    unit = Requantize(8, pe, 6, DataType["INT8"], DataType["INT8"], coefficients_of(form), form.shift,
                      channel_groups=groups)
    image = np.random.default_rng(groups).integers(-128, 128, (2, 6, 8))
    frames = from_channel_last(image, groups)
    last = replace(unit, channel_groups=1).reference(image.reshape(2, -1))
    np.testing.assert_array_equal(to_channel_last(unit.reference(frames), 6, 8, groups).reshape(2, -1), last)
    check_unit(unit, frames)
    with pytest.raises(HwgenError, match=r"Requantize: channel_groups=3 must divide the channel folds \(8\)"):
        replace(unit, PE=1, channel_groups=3)


def test_unit_half_even_and_one_piece(check_unit):
    z = np.arange(-512, 512)
    table = np.clip(np.round(z / 2.0), -128, 127).astype(np.int64)[None, :].repeat(4, axis=0)
    form = fit_table(table, -512, -128, 127).form
    unit = Requantize(4, 2, 1024, DataType["INT10"], DataType["INT8"], coefficients_of(form), form.shift)
    assert unit.pieces == 1 and unit.parameter_memories() == []  # every channel alike: no ROM at all
    frames = np.stack([np.repeat(z, 4), np.repeat(z[::-1], 4)])
    assert np.array_equal(unit.reference(frames[:1]).reshape(1024, 4)[:, 0], table[0])
    check_unit(unit, frames)


def test_coefficients_hold_a_few_numbers_per_channel():
    x = np.arange(-128, 128)
    unit_form = fit_table(rpreluish(x, 64, seed=4), -128, -128, 127).form
    unit = Requantize(64, 1, 1, DataType["INT8"], DataType["INT8"], coefficients_of(unit_form), unit_form.shift)
    table_bits = 64 * 256 * 8
    assert sum(d * w for d, w, _ in unit.parameter_memories()) * 15 < table_bits


def test_bad_coefficients_are_named():
    coef = np.zeros((2, 11), np.int64)
    coef[:, 3] = coef[:, 7] = 300  # hi beyond INT8
    with pytest.raises(HwgenError, match="clamp bounds must lie within output_dtype INT8"):
        Requantize(2, 1, 1, DataType["INT8"], DataType["INT8"], coef, 0)


@pytest.mark.parametrize("pe, idt, steps", [(1, DataType["INT10"], 255), (4, DataType["INT14"], 255),
                                            (2, DataType["UINT9"], 31)])
def test_batchnorm_thresholds_as_arithmetic_in_rtl(pe, idt, steps, check_unit):
    """Thresholds of a float32 BatchNorm and rounding, found as one line and run in Verilator:
    on random values, on a threshold and at both ends of the range."""
    lo, hi = int(idt.min()), int(idt.max())
    thr = batchnorm_requantization(8, lo, hi, steps, seed=steps + pe)
    odt = DataType["INT8"] if steps == 255 else DataType["UINT5"]
    bias = -128 if steps == 255 else 0
    form = fit_thresholds(thr, lo, hi, bias, int(odt.min()), int(odt.max()))
    assert form is not None
    unit = Requantize(8, pe, 3, idt, odt, coefficients_of(form), form.shift)
    every = np.arange(lo, hi + 1)[:, None]
    assert np.array_equal(form(every), bias + (every[..., None] >= thr).sum(-1))
    frames = np.random.default_rng(1).integers(lo, hi + 1, size=(6, 3 * 8))
    frames[0, :8] = np.clip(thr[:, steps // 2], lo, hi)  # on a threshold
    frames[1, :8], frames[2, :8] = lo, hi
    check_unit(unit, frames, seed=2)


def test_random_thresholds_have_no_form():
    thr = np.sort(np.random.default_rng(0).integers(-500, 500, size=(4, 40)), axis=1)
    assert fit_thresholds(thr, -512, 511, 0, 0, 63) is None


def test_arithmetic_holds_a_fraction_of_the_thresholds_memory():
    from hwgen.units.thresholding import Thresholding

    thr = batchnorm_requantization(64, -2048, 2047, 255, seed=3)
    search = Thresholding(64, 1, DataType["INT12"], thr, DataType["INT8"], -128, binary_search=True)
    form = fit_thresholds(thr, -2048, 2047, -128, -128, 127)
    unit = Requantize(64, 1, 1, DataType["INT12"], DataType["INT8"], coefficients_of(form), form.shift)
    assert sum(d * w for d, w, _ in unit.parameter_memories()) * 20 < \
        sum(d * w for d, w, _ in search.parameter_memories())


@pytest.mark.parametrize("pe", [1, 2])
def test_a_channel_without_a_form_reads_a_table_row(pe, check_unit):
    """Channel 5 is no two pieces (noise): it reads its row of the table, the others compute."""
    x = np.arange(-128, 128)
    table = rpreluish(x, 8, seed=6)
    table[5] = np.random.default_rng(0).integers(-128, 128, 256)
    fit = fit_table(table, -128, -128, 127)
    assert fit.failed.tolist() == [c == 5 for c in range(8)] and "channel 5:" in fit.reason
    rows = np.where(fit.failed, 1, 0)
    unit = Requantize(8, pe, 256, DataType["INT8"], DataType["INT8"], coefficients_of(fit.form, rows), fit.form.shift,
                      table[fit.failed])
    frames = np.stack([np.repeat(x, 8), np.repeat(x[::-1], 8)])
    assert np.array_equal(unit.reference(frames[:1]).reshape(256, 8), table.T)
    assert [r for _, _, r in unit.parameter_memories()].count("table") == 1  # one lane holds the row
    check_unit(unit, frames)


#: BatchNorm-like scalings (accumulator scale, gamma, beta) of a wide accumulator whose float32
#: rounding puts one to three thresholds a value off every line, and one that a line holds
WIDE_BATCHNORM = ((0.0015957715222612023, 0.5979430079460144, -13.458263397216797),
                  (0.001330378814600408, 0.5504688620567322, 1.6563993692398071),
                  (0.001435374841094017, 0.49553003907203674, 9.372115135192871),
                  (0.0011, 0.61, 3.25))


def wide_batchnorm(x: np.ndarray) -> np.ndarray:
    """The model's own ops in float32 on accumulator values x: scale, BatchNorm, round half to
    even, clamp to 8 bits; (len(x), C)."""
    s, a, b = (np.array(col, np.float32) for col in zip(*WIDE_BATCHNORM))
    v = (x[:, None].astype(np.float32) * s) * a + b
    return np.clip(np.round(v), -128, 127).astype(np.int64)


def test_a_wide_accumulator_with_float_rounded_thresholds_is_arithmetic_with_exceptions(verilator_cache):
    """A 22-bit accumulator's BatchNorm into 8 bits: the slope interval is narrow (a 23-bit slope
    at a shift of 32; with a 23-bit input, two DSPs per lane and the offset added in 20-bit
    chunks) and in three channels float32 puts thresholds off every line, where single inputs
    become exceptions. On every input value (4 M per channel), in Verilator with and without
    stalls, the unit gives the model's ops."""
    x = np.arange(-2 ** 21, 2 ** 21, dtype=np.int64)
    y = wide_batchnorm(x)
    first = np.stack([np.searchsorted(col, np.arange(-127, 128)) for col in y.T])  # each column rises
    thresholds = np.where(first < x.size, x[np.minimum(first, x.size - 1)], x[-1] + 1)
    form = fit_thresholds(thresholds, x[0], x[-1], -128, -128, 127)
    assert form is not None and form.exceptions == 3
    assert [int((form.except_x[c] != form.except_x[c, 0]).sum() + 1) for c in range(3)] == [1, 3, 2]
    assert np.array_equal(form(np.repeat(x[:, None], 4, axis=1)), y)
    unit = Requantize(channels=4, PE=2, pixels=512, input_dtype=DataType["INT22"], output_dtype=DataType["INT8"],
                      coefficients=coefficients_of(form), shift=form.shift)
    assert unit.est_dsps() == 4 and len(unit.add_chunks()) > 1
    frames = np.repeat(x.reshape(-1, 512, 1), 4, axis=2).reshape(-1, 512 * 4)
    for stall in (0.0, 0.3):
        out, result = simulate_unit(unit, frames, stall_prob=stall, seed=5, cache_dir=verilator_cache)
        assert np.array_equal(out.reshape(-1, 4), y), stall
        if stall == 0.0:
            assert result.cycles_per_frame == unit.est_cycles() == 1024

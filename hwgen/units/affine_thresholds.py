"""Thresholds that are an affine function in disguise, and the gateware that computes them so.

An 8-bit requantization after a layer (BatchNorm, scale, round, clamp) has 255 thresholds per
channel, spaced almost evenly: the count of thresholds passed is then

    count(x) = clamp(floor((m * x + b) / 2^S), 0, T)            (m >= 0, b integers per channel)

for every input x of the range, which one multiplier and a shift compute from two numbers per
channel instead of 255 stored thresholds. `affine_fit` finds (m, b, S) that reproduce the given
thresholds exactly on the whole input range, or says there are none (rounding in the model's float
ops can put one threshold off the line); the unit then keeps its thresholds.

For each level k = 1..T with threshold t_k (clamped to [lo, hi + 1]), count(x) >= k must hold
exactly when x >= t_k:
    m * t_k + b       >= k * 2^S          where t_k <= hi (reachable)
    m * (t_k - 1) + b <= k * 2^S - 1      where t_k > lo  (not always passed)
For a given m the feasible b form an interval [g(m), h(m)] with g convex and h concave in m, so
the m that work form an interval too: a ternary search on h - g over the integers finds one.
"""

from __future__ import annotations

import hashlib

import numpy as np
from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from hwgen.units.base import stream_ports
from hwgen.units.datapath import decode, memory_attrs, pack_words, range_bits, wrap_inc

#: the largest shift tried; the multiplier's width grows with it (a BatchNorm's thresholds, set by
#: float rounding to the nearest integer, need up to about 2^-30 of precision in the slope)
MAX_SHIFT = 32
#: stands for "no bound"; every product m * t stays below it (see `affine_fit`), and h - g in int64
_UNBOUNDED = np.int64(1) << 61


def _bounds(m: np.ndarray, t: np.ndarray, levels: np.ndarray, lo: int, hi: int, shift: int):
    """(g, h) per channel for slopes m (C,): the least and the most b that meet every constraint."""
    step = np.int64(1) << shift
    need = np.where(t <= hi, levels * step - m[:, None] * t, -_UNBOUNDED)
    allow = np.where(t > lo, levels * step - 1 - m[:, None] * (t - 1), _UNBOUNDED)
    return need.max(axis=1), allow.min(axis=1)


def affine_fit(thresholds: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(m, b, S) with count(x) = clamp(floor((m x + b) / 2^S), 0, T) for every x in [lo, hi] and
    every channel (thresholds (C, T), ascending, already clamped to [lo, hi + 1]); the smallest S
    that works, or None. Remembered for the thresholds last asked about: a unit is made many times
    in a build (folding, plumbing, reports)."""
    t = np.ascontiguousarray(thresholds, np.int64)
    key = (hashlib.sha256(t.tobytes()).hexdigest(), t.shape, int(lo), int(hi))
    if key not in _FITS:
        if len(_FITS) >= _FITS_KEPT:
            _FITS.pop(next(iter(_FITS)))
        _FITS[key] = _affine_fit(t, int(lo), int(hi))
    return _FITS[key]


#: the fits `affine_fit` remembers, oldest first, and how many
_FITS: dict[tuple, tuple[np.ndarray, np.ndarray, int] | None] = {}
_FITS_KEPT = 256


def _affine_fit(t: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    channels, steps = t.shape
    levels = np.arange(1, steps + 1, dtype=np.int64)[None, :]
    span = max(1, hi - lo + 1)
    magnitude = max(abs(lo), abs(hi) + 1).bit_length()
    for shift in range(MAX_SHIFT + 1):
        if steps.bit_length() + 1 + shift + magnitude >= 61:
            return None  # m * t could leave the exact integer range
        low = np.zeros(channels, np.int64)
        high = np.full(channels, (steps + 1) << shift, np.int64)  # a steeper slope skips levels
        # ternary search for the largest h(m) - g(m) (concave), per channel, on [low, high]
        for _ in range(2 * (shift + steps.bit_length() + span.bit_length()) + 8):
            if np.all(high - low <= 2):
                break
            a = low + (high - low) // 3
            b = high - (high - low) // 3
            ga, ha = _bounds(a, t, levels, lo, hi, shift)
            gb, hb = _bounds(b, t, levels, lo, hi, shift)
            better_a = (ha - ga) >= (hb - gb)
            high = np.where(better_a, b, high)
            low = np.where(better_a, low, a)
        best_m, best_slack = low.copy(), np.full(channels, np.iinfo(np.int64).min)
        for offset in range(3):
            m = np.minimum(low + offset, high)
            g, h = _bounds(m, t, levels, lo, hi, shift)
            improve = (h - g) > best_slack
            best_m, best_slack = np.where(improve, m, best_m), np.where(improve, h - g, best_slack)
        if np.all(best_slack >= 0):
            g, _ = _bounds(best_m, t, levels, lo, hi, shift)
            best_m.setflags(write=False)
            g.setflags(write=False)
            return best_m, g, shift
    return None


def affine_counts(x: np.ndarray, m: np.ndarray, b: np.ndarray, shift: int, steps: int) -> np.ndarray:
    """count(x) per channel for x (..., C): the function the gateware computes (numpy floor division
    is the arithmetic shift)."""
    return np.clip((np.asarray(x, np.int64) * m + b) >> shift, 0, steps)


def coefficient_shapes(m: np.ndarray, b: np.ndarray) -> tuple[int, tuple[int, bool]]:
    """Bits of the slopes (unsigned) and of the offsets (width, signed: always two's complement,
    as the gateware reads them)."""
    return max(1, int(m.max()).bit_length()), range_bits(min(int(b.min()), -1), int(b.max()))


class AffineThresholdingComponent(wiring.Component):
    """count = clamp((m x + b) >> S, 0, T) per lane, two pipeline stages under one stall signal:
    stage 1 takes the beat while the coefficient ROM (per channel fold: each lane's m and b)
    reads, stage 2 multiplies, adds, shifts, clamps and registers the output beat."""

    def __init__(self, unit) -> None:
        self.unit = unit
        super().__init__(stream_ports(unit.inputs[0].width, unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m_, b_, shift = u._affine
        mbits, (bbits, _) = coefficient_shapes(m_, b_)
        folds = u.channels // u.PE
        ibits, obits = u.input_dtype.bitwidth(), u.output_dtype.bitwidth()
        lane_bits = mbits + bbits
        codes = np.stack([m_, b_ & ((1 << bbits) - 1)], axis=1)  # (C, 2): m low, b high
        words = pack_words((codes[:, 0] | (codes[:, 1] << mbits)).reshape(folds, u.PE), lane_bits)
        m = Module()
        m.submodules.coefficients = rom = Memory(shape=unsigned(u.PE * lane_bits), depth=folds, init=words,
                                                 attrs=memory_attrs(folds, u.PE * lane_bits, rom=True))
        rd = rom.read_port(domain="sync")
        advance, fold = Signal(), Signal(range(folds))
        x1, v1 = Signal(self.inp.payload.shape()), Signal()
        m.d.comb += [advance.eq(~self.out.valid | self.out.ready), self.inp.ready.eq(advance),
                     rd.addr.eq(fold), rd.en.eq(advance)]
        with m.If(self.inp.valid & advance):
            m.d.sync += fold.eq(wrap_inc(fold, folds))
        lanes = []
        width = ibits + mbits + bbits + 2
        for pe in range(u.PE):
            value = decode(x1[pe * ibits:(pe + 1) * ibits], u.input_dtype)
            word = rd.data[pe * lane_bits:(pe + 1) * lane_bits]
            slope, offset = word[:mbits], word[mbits:].as_signed()
            total = Signal(signed(width), name=f"total{pe}")
            m.d.comb += total.eq((value * slope + offset) >> shift)
            count = Signal(range(u.steps + 1), name=f"count{pe}")
            with m.If(total < 0):
                m.d.comb += count.eq(0)
            with m.Elif(total > u.steps):
                m.d.comb += count.eq(u.steps)
            with m.Else():
                m.d.comb += count.eq(total)
            lanes.append((count + Const(u.out_bias % (1 << obits), obits))[:obits])
        with m.If(advance):
            m.d.sync += [x1.eq(self.inp.payload), v1.eq(self.inp.valid), self.out.valid.eq(v1),
                         self.out.payload.eq(Cat(*lanes))]
        return m

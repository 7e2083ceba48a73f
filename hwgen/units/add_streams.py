"""AddStreams: the elementwise integer sum `alpha * a + beta * b` of two streams (a residual join).

Both streams carry the same tensor shape channel-last, `PE` elements per beat; `alpha` and `beta`
are the integer coefficients that put both operands on one scale (powers of two where the
operands' scales differ by a power of two, so the products are shifts). Where the operands' scales
differ from channel to channel (a BatchNorm on an accumulator joined to a shortcut), `alphas` and
`betas` give a pair per channel: each lane takes its channel's pair for the beat's channel fold. The sum is exact: the
output datatype holds every possible value (`sum_dtype`); requantizing it to the next quantizer
is the job of the unit after it (thresholds or a lookup table, found from the model's own ops).

The gateware is a join: a beat leaves when both inputs have one, through one output register;
`inp0.ready` / `inp1.ready` depend on the other input's valid and on `out.ready`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from amaranth import Array, Cat, Const, Module, Signal, signed
from amaranth.lib import wiring
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.streams import from_channel_last
from hwgen.units.datapath import (
    check_dtype, check_groups, check_positive, check_values, decode, smallest_int_dtype, step_channel_fold,
)

_WHERE = "AddStreams"


def sum_range(a: BaseDataType, b: BaseDataType, alpha: int | Sequence[int], beta: int | Sequence[int]
              ) -> tuple[int, int]:
    """Smallest and largest `alpha * x + beta * y` over all values x of `a`, y of `b` (and over
    the channels, for coefficients per channel)."""
    lows, highs = [], []
    for al, be in zip(np.atleast_1d(alpha), np.atleast_1d(beta)):
        xs = [int(al) * int(a.min()), int(al) * int(a.max())]
        ys = [int(be) * int(b.min()), int(be) * int(b.max())]
        lows.append(min(xs) + min(ys))
        highs.append(max(xs) + max(ys))
    return min(lows), max(highs)


def sum_dtype(a: BaseDataType, b: BaseDataType, alpha: int | Sequence[int], beta: int | Sequence[int]
              ) -> BaseDataType:
    return smallest_int_dtype(*sum_range(a, b, alpha, beta))


@dataclass(frozen=True)
class AddStreams(Unit):
    """`alpha * inp0 + beta * inp1` over `pixels` vectors of `channels` channels, `PE` per beat."""

    FOLDING = (("PE", "channels"),)

    channels: int
    PE: int
    pixels: int
    a_dtype: BaseDataType
    b_dtype: BaseDataType
    alpha: int
    beta: int
    output_dtype: BaseDataType
    #: coefficients per channel, in place of `alpha` and `beta` (empty: the same in every channel)
    alphas: tuple[int, ...] = ()
    betas: tuple[int, ...] = ()
    #: the order of the streams (`hwgen.streams`, Order): 1, channel-last; channels / PE, channel-major
    channel_groups: int = 1

    def __post_init__(self) -> None:
        check_positive(self, ("channels", "PE", "pixels"), _WHERE)
        if self.channels % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide channels={self.channels}", where=_WHERE)
        check_groups(self, _WHERE)
        for name in ("a_dtype", "b_dtype", "output_dtype"):
            check_dtype(getattr(self, name), name, _WHERE)
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value == 0:
                raise HwgenError(f"{name} must be a non-zero integer, not {value!r}", where=_WHERE)
        if bool(self.alphas) != bool(self.betas) or (self.alphas and (
                len(self.alphas) != self.channels or len(self.betas) != self.channels)):
            raise HwgenError(f"alphas and betas must both hold one coefficient per channel ({self.channels}), "
                             f"not {len(self.alphas)} and {len(self.betas)}", where=_WHERE)
        if 0 in self.alphas or 0 in self.betas:
            raise HwgenError("alphas and betas must be non-zero integers", where=_WHERE)
        alpha, beta = self.coefficients
        lo, hi = sum_range(self.a_dtype, self.b_dtype, alpha, beta)
        if lo < self.output_dtype.min() or hi > self.output_dtype.max():
            raise HwgenError(f"output_dtype {self.output_dtype.name} cannot hold the sum's range [{lo}, {hi}] "
                             f"(use {sum_dtype(self.a_dtype, self.b_dtype, alpha, beta).name})",
                             where=_WHERE)

    @property
    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, beta) per channel."""
        if self.alphas:
            return np.array(self.alphas, np.int64), np.array(self.betas, np.int64)
        return np.full(self.channels, self.alpha, np.int64), np.full(self.channels, self.beta, np.int64)

    @classmethod
    def stream_counts(cls, attrs: Mapping[str, object]) -> tuple[int, int]:
        return 2, 1

    @property
    def beats(self) -> int:
        return self.pixels * self.channels // self.PE

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.a_dtype, self.PE, self.beats), StreamSpec(self.b_dtype, self.PE, self.beats))

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.output_dtype, self.PE, self.beats),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        a, b = frames
        a = check_values(a, self.a_dtype, "AddStreams input 0")
        b = check_values(b, self.b_dtype, "AddStreams input 1")
        alpha, beta = self.coefficients
        per_pixel = [from_channel_last(np.tile(c, (1, self.pixels, 1)), self.channel_groups) for c in (alpha, beta)]
        return per_pixel[0] * a + per_pixel[1] * b

    def component(self) -> wiring.Component:
        return AddStreamsComponent(self)

    def est_cycles(self) -> int:
        return self.beats

    def est_luts(self) -> int:
        """Per lane one adder of the output width (~1 LUT per bit) and, for a coefficient that is
        not a power of two, a constant multiplier (~1 LUT per bit per extra set bit); the output
        register is flip-flops. With coefficients per channel, per lane and operand a multiplier
        by a coefficient that changes with the channel fold (~ operand bits x coefficient bits),
        its coefficient picked from the fold's (a mux of the folds) and the fold counter."""
        bits = self.output_dtype.bitwidth()
        if not self.alphas:
            extra = sum(max(0, bin(abs(int(c))).count("1") - 1) for c in (self.alpha, self.beta))
            return self.PE * bits * (1 + extra) + 4
        folds = self.channels // self.PE
        multipliers = 0
        for dtype, coefficient in ((self.a_dtype, self.alphas), (self.b_dtype, self.betas)):
            cbits = max(abs(int(c)) for c in coefficient).bit_length() + 1
            multipliers += dtype.bitwidth() * cbits + (cbits * (folds - 1) // 5 if folds > 1 else 0)
        return self.PE * (bits + multipliers) + folds.bit_length() + 4

    def est_brams(self) -> int:
        return 0


class AddStreamsComponent(wiring.Component):
    def __init__(self, unit: AddStreams) -> None:
        self.unit = unit
        specs = unit.inputs + unit.outputs
        super().__init__(stream_ports([s.width for s in unit.inputs], specs[2].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        a, b = self.inp0, self.inp1
        abits, bbits, obits = u.a_dtype.bitwidth(), u.b_dtype.bitwidth(), u.output_dtype.bitwidth()
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.out.valid | self.out.ready),
            a.ready.eq(advance & b.valid),
            b.ready.eq(advance & a.valid),
        ]
        lanes = []
        folds = u.channels // u.PE
        fold = Signal(range(folds))  # the channel fold of the beat at the inputs
        if u.alphas and folds > 1:
            step_channel_fold(m, a.valid & a.ready, fold, folds, u.pixels, u.channel_groups)
        alpha, beta = u.coefficients
        shapes = [signed(int(np.abs(c).max()).bit_length() + 1) for c in (alpha, beta)]
        for pe in range(u.PE):
            x = decode(a.payload[pe * abits:(pe + 1) * abits], u.a_dtype)
            y = decode(b.payload[pe * bbits:(pe + 1) * bbits], u.b_dtype)
            if u.alphas:  # this lane's channels: pe, PE + pe, ...
                al = Array(Const(int(c), shapes[0]) for c in alpha[pe::u.PE])[fold]
                be = Array(Const(int(c), shapes[1]) for c in beta[pe::u.PE])[fold]
                lanes.append((x * al + y * be)[:obits])
            else:
                lanes.append((x * u.alpha + y * u.beta)[:obits])
        with m.If(advance):
            m.d.sync += [self.out.valid.eq(a.valid & b.valid), self.out.payload.eq(Cat(*lanes))]
        return m

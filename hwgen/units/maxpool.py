"""MaxPool: non-overlapping max pooling (kernel == stride) of an NHWC stream.

Also home of the window-reduction gateware shared with `SumPool` (`PoolComponent`): both
fold every input pixel of a pooling window into one accumulator per (output column, channel fold),
the first pixel loading it and the last sending the result.

Semantics: an `in_h` x `in_w` x `channels` image, `PE` channels per beat, gives
`in_h // kernel` x `in_w // kernel` x `channels` (floor, like PyTorch: trailing rows and columns
that do not fill a window are dropped), each output the maximum of its `kernel` x `kernel` window.
On the wire a BINARY or BIPOLAR maximum is the OR of the codes (BIPOLAR 1 is +1), INTn a signed and
UINTn an unsigned comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import (
    check_dtype,
    check_positive,
    check_values,
    memory_attrs,
    memory_bram18,
    memory_luts,
    wrap_inc,
)

_WHERE = "MaxPool"

#: Per-lane gateware of a reduction: `load(x)` starts an accumulator from an input code,
#: `combine(acc, x)` folds an input code into it; both return the accumulator's new code.
LaneLoad = Callable[[Value], Value]
LaneCombine = Callable[[Value, Value], Value]


def maxpool_reference(x: np.ndarray, kernel: int) -> np.ndarray:
    """Images (N, H, W, C) -> (N, H//kernel, W//kernel, C), max over each kernel x kernel window."""
    n, h, w, c = x.shape
    oh, ow = h // kernel, w // kernel
    win = x[:, : oh * kernel, : ow * kernel].reshape(n, oh, kernel, ow, kernel, c)
    return win.max(axis=(2, 4))


def max_lane(dtype: BaseDataType) -> LaneCombine:
    """Gateware maximum of two wire codes of `dtype`."""
    if dtype.bitwidth() == 1:  # BINARY, BIPOLAR (code 1 is the larger value), UINT1
        return lambda a, b: a | b
    if dtype.signed():
        return lambda a, b: Mux(a.as_signed() >= b.as_signed(), a, b)
    return lambda a, b: Mux(a >= b, a, b)


@dataclass(frozen=True)
class MaxPool(Unit):
    """Max pooling of `kernel` x `kernel` windows with stride `kernel` (`stride`, if given, must
    equal `kernel`), `PE` channels per beat."""

    FOLDING = (("PE", "channels"),)

    in_h: int
    in_w: int
    channels: int
    kernel: int
    PE: int
    dtype: BaseDataType
    stride: int | None = None

    def __post_init__(self) -> None:
        check_positive(self, ("in_h", "in_w", "channels", "kernel", "PE"), _WHERE)
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel)
        if self.stride != self.kernel:
            raise HwgenError(
                f"stride={self.stride!r} must equal kernel={self.kernel} (non-overlapping windows only)",
                where=_WHERE,
            )
        if self.channels % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide channels={self.channels}", where=_WHERE)
        for name in ("in_h", "in_w"):
            if getattr(self, name) < self.kernel:
                raise HwgenError(f"{name}={getattr(self, name)} is smaller than kernel={self.kernel}", where=_WHERE)
        check_dtype(self.dtype, "dtype", _WHERE)

    @property
    def out_h(self) -> int:
        return self.in_h // self.kernel

    @property
    def out_w(self) -> int:
        return self.in_w // self.kernel

    @property
    def folds(self) -> int:
        return self.channels // self.PE

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.dtype, self.PE, self.in_h * self.in_w * self.folds),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.dtype, self.PE, self.out_h * self.out_w * self.folds),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        x = check_values(x, self.dtype, "MaxPool input")
        n = x.shape[0]
        return maxpool_reference(x.reshape(n, self.in_h, self.in_w, self.channels), self.kernel).reshape(n, -1)

    def component(self) -> wiring.Component:
        return PoolComponent(
            in_h=self.in_h, in_w=self.in_w, folds=self.folds, pool_h=self.kernel, pool_w=self.kernel,
            lanes=self.PE, in_bits=self.dtype.bitwidth(), acc_bits=self.dtype.bitwidth(),
            load=lambda x: x, combine=max_lane(self.dtype),
        )

    def _acc_shape(self) -> tuple[int, int]:
        return self.out_w * self.folds, self.PE * self.dtype.bitwidth()

    def held_fraction(self) -> float:
        """A row of windows (`kernel` image rows), and one more row while the next arrives."""
        return min(1.0, (self.kernel + 1) / self.in_h)

    def least_held_fraction(self) -> float:
        """The first row of windows: `kernel` image rows less the last row's tail."""
        return ((self.kernel - 1) * self.in_w + self.kernel) / (self.in_h * self.in_w)

    def output_burst(self) -> float:
        return pool_output_burst(self.out_w, self.folds, self.kernel)

    def est_cycles(self) -> int:
        return self.inputs[0].beats_per_frame

    def est_luts(self) -> int:
        """Per lane a comparator and a 2:1 select per bit (one LUT for a 1-bit OR), the
        accumulator line if not in block RAM, and ~5 small position counters."""
        bits = self.dtype.bitwidth()
        lane = 1 if bits == 1 else 2 * bits
        return self.PE * lane + memory_luts(*self._acc_shape()) + pool_control_luts(self.in_h, self.in_w, self.folds)

    def est_brams(self) -> int:
        return memory_bram18(*self._acc_shape())


def pool_output_burst(out_w: int, folds: int, pool_h: int) -> float:
    """A pool's results of one row of windows (`out_w * folds` beats) leave during the last of its
    `pool_h` image rows, and nothing during the others: that many beats less the share an even
    reader takes meanwhile."""
    return out_w * folds * (1 - 1 / pool_h)


def pool_control_luts(in_h: int, in_w: int, folds: int) -> int:
    """LUTs of `PoolComponent`'s position counters and window flags (~2 per counter bit)."""
    bits = sum(max(1, (n - 1).bit_length()) for n in (in_h, in_w, folds))
    return 4 * bits + 8


class PoolComponent(wiring.Component):
    """Reduce each `pool_h` x `pool_w` window (stride = window) of an `in_h` x `in_w` image of
    `folds` beats per pixel, `lanes` elements of `in_bits` per beat, to one beat of `acc_bits`
    per lane. Pixels past the last whole window are dropped.

    The accumulators of one window row (one per output column and channel fold) live in a memory
    with a synchronous, write-transparent read port. Two stages under one stall signal, one input
    beat per clock:

    stage 1: accept a beat and read its accumulator;
    stage 2: load (first pixel of a window) or combine, write the accumulator back, and on the
             window's last pixel put the result into the output register.
    The stages stall only when a result meets a full output register; `inp.ready` is combinational
    from `out.ready`. The transparent read hands a result written back in the same cycle straight
    to the next beat (the same accumulator follows itself when `folds` == 1).
    """

    def __init__(
        self, *, in_h: int, in_w: int, folds: int, pool_h: int, pool_w: int, lanes: int,
        in_bits: int, acc_bits: int, load: LaneLoad, combine: LaneCombine,
    ) -> None:
        self.in_h, self.in_w, self.folds = in_h, in_w, folds
        self.pool_h, self.pool_w = pool_h, pool_w
        self.lanes, self.in_bits, self.acc_bits = lanes, in_bits, acc_bits
        self.load, self.combine = load, combine
        super().__init__(stream_ports(lanes * in_bits, lanes * acc_bits))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        folds, ph, pw = self.folds, self.pool_h, self.pool_w
        out_w = self.in_w // pw
        used_h, used_w = (self.in_h // ph) * ph, out_w * pw
        depth, width = out_w * folds, self.lanes * self.acc_bits

        m.submodules.acc = mem = Memory(
            shape=unsigned(width), depth=depth, init=[], attrs=memory_attrs(depth, width, rom=False)
        )
        wr = mem.write_port()
        rd = mem.read_port(domain="sync", transparent_for=(wr,))

        # Position of the incoming beat. Trailing columns (fewer than pw) never wrap `kw`, so
        # `base` (= output column * folds) stays within [0, depth].
        cf = Signal(range(folds))
        w = Signal(range(self.in_w))
        h = Signal(range(self.in_h))
        kw = Signal(range(pw))
        kh = Signal(range(ph))
        base = Signal(range(depth + 1))
        inside = []
        if used_w < self.in_w:
            inside.append(w < used_w)
        if used_h < self.in_h:
            inside.append(h < used_h)

        # Stage 2 registers (the accumulator word arrives in rd.data with them).
        x1 = Signal(self.lanes * self.in_bits)
        addr1 = Signal.like(rd.addr)
        v1, first1, last1 = Signal(), Signal(), Signal()

        result = []
        for i in range(self.lanes):
            x = x1[i * self.in_bits : (i + 1) * self.in_bits]
            acc = rd.data[i * self.acc_bits : (i + 1) * self.acc_bits]
            lane = Signal(self.acc_bits, name=f"lane{i}")
            m.d.comb += lane.eq(Mux(first1, self.load(x), self.combine(acc, x)))
            result.append(lane)

        advance = Signal()
        accept = Signal()
        m.d.comb += [
            advance.eq(~(v1 & last1) | ~self.out.valid | self.out.ready),
            self.inp.ready.eq(advance),
            accept.eq(self.inp.valid & advance),
            rd.addr.eq(base + cf),
            rd.en.eq(advance),
            wr.addr.eq(addr1),
            wr.data.eq(Cat(*result)),
            wr.en.eq(advance & v1 & ~last1),
        ]

        with m.If(advance):
            m.d.sync += [
                x1.eq(self.inp.payload),
                addr1.eq(rd.addr),
                v1.eq(accept & (Cat(*inside).all() if inside else 1)),
                first1.eq((kh == 0) & (kw == 0)),
                last1.eq((kh == ph - 1) & (kw == pw - 1)),
            ]
        with m.If(self.out.ready):
            m.d.sync += self.out.valid.eq(0)
        with m.If(advance & v1 & last1):
            m.d.sync += [self.out.valid.eq(1), self.out.payload.eq(Cat(*result))]

        with m.If(accept):
            with m.If(cf != folds - 1):
                m.d.sync += cf.eq(cf + 1)
            with m.Elif(w != self.in_w - 1):
                m.d.sync += [cf.eq(0), w.eq(w + 1), kw.eq(wrap_inc(kw, pw))]
                with m.If(kw == pw - 1):
                    m.d.sync += base.eq(base + folds)
            with m.Else():
                m.d.sync += [cf.eq(0), w.eq(0), kw.eq(0), base.eq(0)]
                with m.If(h != self.in_h - 1):
                    m.d.sync += [h.eq(h + 1), kh.eq(wrap_inc(kh, ph))]
                with m.Else():
                    m.d.sync += [h.eq(0), kh.eq(0)]
        return m

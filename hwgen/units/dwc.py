"""DataWidthConverter: re-cut a stream of `in_elems` elements per beat into beats of `out_elems`.

Any ratio works (3 -> 5 as well as 8 -> 2). Elements are moved in chunks of `g = gcd(in, out)`
elements: a shift register of chunks with a fill count; an output beat leaves from the bottom
(oldest chunks) and an input beat is written just above the chunks still held. That needs a
multiplexer per chunk over every place an input beat can land, which grows with the square of
the ratio (1,024 -> 1 would be millions of LUTs); where one width divides the other, the common
case, two simpler forms cost a multiplexer or an enable per bit instead:

- narrowing by k (`NarrowingComponent`): a register of one input beat shifted down by an output
  beat per clock, and a second register that takes the next input beat while it drains;
- widening by k (`WideningComponent`): each input beat is written into its slot of an output
  word, which leaves whole; a completed word waits in place only while the output is busy.

Throughput: one input beat per cycle when widening and one output beat per cycle when narrowing,
with `inp.ready` and `out.valid` both taken from registers (no combinational path from `out.ready`
to `inp.ready`, so a chain of converters does not build a long ready path). That needs room for
`2*in + out - 1` elements: the converter accepts while at most `in + out - 1` are held, whether or
not an output beat leaves in the same cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import check_dtype, check_int, wrap_inc


class DwcComponent(wiring.Component):
    """Gateware of `DataWidthConverter`; `in_chunks`/`out_chunks` count chunks of `chunk_bits`."""

    def __init__(self, chunk_bits: int, in_chunks: int, out_chunks: int) -> None:
        self.chunk_bits = chunk_bits
        self.in_chunks = in_chunks
        self.out_chunks = out_chunks
        self.capacity = 2 * in_chunks + out_chunks - 1
        super().__init__(stream_ports(chunk_bits * in_chunks, chunk_bits * out_chunks))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cb, ic, oc, cap = self.chunk_bits, self.in_chunks, self.out_chunks, self.capacity
        if ic == oc:
            # Nothing to re-cut: a wire, so that a converter between equal widths costs nothing.
            m.d.comb += [
                self.out.payload.eq(self.inp.payload),
                self.out.valid.eq(self.inp.valid),
                self.inp.ready.eq(self.out.ready),
            ]
            return m

        buf = Signal(cap * cb)
        count = Signal(range(cap + 1))  # chunks held, oldest at the bottom of `buf`
        m.d.comb += [
            self.out.payload.eq(buf[: oc * cb]),
            self.out.valid.eq(count >= oc),
            self.inp.ready.eq(count <= cap - ic),
        ]
        out_fire = self.out.valid & self.out.ready
        in_fire = self.inp.valid & self.inp.ready

        kept = Signal(range(cap + 1))
        nxt = Signal(cap * cb)
        m.d.comb += [
            kept.eq(Mux(out_fire, count - oc, count)),
            nxt.eq(Mux(out_fire, buf >> (oc * cb), buf)),
        ]
        with m.If(in_fire):
            # `kept <= count <= cap - ic` whenever an input beat is accepted.
            with m.Switch(kept):
                for c in range(cap - ic + 1):
                    with m.Case(c):
                        m.d.comb += nxt[c * cb : (c + ic) * cb].eq(self.inp.payload)
        m.d.sync += [
            buf.eq(nxt),
            count.eq(kept + Mux(in_fire, ic, 0)),
        ]
        return m


class NarrowingComponent(wiring.Component):
    """Gateware of a converter from `k` chunks per beat to one: `buf` drains an output beat per
    clock (`left` of them still in it), `hold` takes the next input beat meanwhile, so the output
    never waits for a refill. inp.ready = ~held, out.valid = left > 0: both registers."""

    def __init__(self, chunk_bits: int, k: int) -> None:
        self.chunk_bits, self.k = chunk_bits, k
        super().__init__(stream_ports(chunk_bits * k, chunk_bits))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cb, k = self.chunk_bits, self.k
        buf, hold = Signal(cb * k), Signal(cb * k)
        left, held = Signal(range(k + 1)), Signal()
        m.d.comb += [self.out.payload.eq(buf[:cb]), self.out.valid.eq(left != 0), self.inp.ready.eq(~held)]
        out_fire = self.out.valid & self.out.ready
        in_fire = self.inp.valid & self.inp.ready
        drained = Signal()
        m.d.comb += drained.eq((left == 0) | ((left == 1) & out_fire))
        with m.If(drained & held):
            m.d.sync += [buf.eq(hold), left.eq(k), held.eq(0)]
        with m.Elif(drained & in_fire):
            m.d.sync += [buf.eq(self.inp.payload), left.eq(k)]
        with m.Else():
            with m.If(out_fire):
                m.d.sync += [buf.eq(buf >> cb), left.eq(left - 1)]
            with m.If(in_fire):
                m.d.sync += [hold.eq(self.inp.payload), held.eq(1)]
        return m


class WideningComponent(wiring.Component):
    """Gateware of a converter from one chunk per beat to `k`: input beat j of a word is written
    into slot j of `acc`; with the last one the word goes to the output register if that is free
    (or being taken), else it waits in `acc` (`full`) and the input with it. inp.ready = ~full and
    out.valid are registers; only the output register's load looks at out.ready."""

    def __init__(self, chunk_bits: int, k: int) -> None:
        self.chunk_bits, self.k = chunk_bits, k
        super().__init__(stream_ports(chunk_bits, chunk_bits * k))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cb, k = self.chunk_bits, self.k
        acc = Signal(cb * k)
        slot, full = Signal(range(k)), Signal()
        m.d.comb += self.inp.ready.eq(~full)
        free = ~self.out.valid | self.out.ready
        in_fire = self.inp.valid & self.inp.ready
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += self.out.valid.eq(0)
        with m.If(full & free):
            m.d.sync += [self.out.payload.eq(acc), self.out.valid.eq(1), full.eq(0)]
        with m.If(in_fire):
            m.d.sync += slot.eq(wrap_inc(slot, k))
            with m.Switch(slot):
                for j in range(k):
                    with m.Case(j):
                        m.d.sync += acc[j * cb:(j + 1) * cb].eq(self.inp.payload)
            with m.If(slot == k - 1):
                with m.If(free & ~full):
                    m.d.sync += [self.out.payload.eq(Cat(acc[:(k - 1) * cb], self.inp.payload)),
                                 self.out.valid.eq(1)]
                with m.Else():
                    m.d.sync += full.eq(1)
        return m


@dataclass(frozen=True)
class DataWidthConverter(Unit):
    """Re-cut frames of `elems_per_frame` elements of `dtype` from `in_elems` to `out_elems`
    elements per beat; the element order is unchanged."""

    FOLDING = ()
    PLUMBING = True

    dtype: BaseDataType
    in_elems: int
    out_elems: int
    elems_per_frame: int

    def __post_init__(self) -> None:
        check_dtype(self.dtype, "dtype", "DataWidthConverter")
        check_int(self.in_elems, "in_elems")
        check_int(self.out_elems, "out_elems")
        check_int(self.elems_per_frame, "elems_per_frame")
        for name in ("in_elems", "out_elems"):
            if self.elems_per_frame % getattr(self, name):
                raise HwgenError(
                    f"elems_per_frame={self.elems_per_frame} is not a multiple of "
                    f"{name}={getattr(self, name)}",
                    where="elems_per_frame",
                )

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.dtype, self.in_elems, self.elems_per_frame // self.in_elems),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.dtype, self.out_elems, self.elems_per_frame // self.out_elems),)

    @property
    def _chunks(self) -> tuple[int, int, int]:
        """(chunk bits, input chunks per beat, output chunks per beat)."""
        g = math.gcd(self.in_elems, self.out_elems)
        return g * self.dtype.bitwidth(), self.in_elems // g, self.out_elems // g

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        return np.array(x, copy=True)

    def component(self) -> wiring.Component:
        cb, ic, oc = self._chunks
        if oc == 1 and ic > 1:
            return NarrowingComponent(cb, ic)
        if ic == 1 and oc > 1:
            return WideningComponent(cb, oc)
        return DwcComponent(cb, ic, oc)

    def est_cycles(self) -> int:
        return max(self.elems_per_frame // self.in_elems, self.elems_per_frame // self.out_elems)

    def est_luts(self) -> int:
        cb, ic, oc = self._chunks
        if ic == oc:
            return 0
        if oc == 1:  # narrowing: a LUT per buffer bit (shift, refill from the hold or the input), the count
            return cb * ic + 2 * ic.bit_length() + 12
        if ic == 1:  # widening: the output register's two sources per bit, the slot decoder
            return cb * oc + 2 * oc + 10
        cap = 2 * ic + oc - 1
        luts = 2 * cap.bit_length() + 4  # count update and compares
        for p in range(cap):
            # Sources of chunk p: hold, shift down by one output beat, and every input offset
            # that can land on it, selected by decoding the fill count: a LUT6 per two sources
            # (Yosys, the converters of CNV-W1A1).
            writers = min(p, cap - ic) - max(0, p - ic + 1) + 1
            sources = 1 + (p + oc < cap) + writers
            luts += cb * max(1, math.ceil(sources / 2))
        return luts

    def est_brams(self) -> int:
        return 0

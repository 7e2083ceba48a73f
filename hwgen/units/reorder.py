"""Reorder: a frame from one order of its channels to another (`hwgen.streams`, Order), through
two banks of the whole frame.

    in (groups in_groups)  ->  bank 0 / bank 1, each a frame laid out channel-last  ->  out (groups out_groups)

A convolution that reads its weights once a frame (`hwgen.units.frame_mvu`) sends its output tile
by tile (channel-major); a unit that takes its input pixel by pixel, or a join whose other operand
comes channel-last, needs the frame in another order. A frame goes into one bank in the order it
comes (each beat to its place in the channel-last layout: `grouped_offset`) while the other bank
is read out in the order asked for, so the two sides run at once at a beat a clock each. The whole
frame is held before the first beat goes out: beside such a unit a shortcut holds as much (for
FIFO sizing it holds up to two frames, at least one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.streams import from_channel_last, to_channel_last
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import (
    bram_read_mux_luts, check_dtype, check_positive, check_values, grouped_offset, memory_attrs, memory_bram18,
    memory_luts, ram_luts,
)

_WHERE = "Reorder"
#: beats of the output side's FIFO: the bank's reads run ahead of the stream by this
OUT_FIFO = 4


@dataclass(frozen=True)
class Reorder(Unit):
    """A frame of `pixels` pixels of `channels` channels of `dtype`, `PE` a beat, from
    `in_groups` channel groups to `out_groups`."""

    #: not folded: its lanes are those of the stream it reorders
    FOLDING = ()

    pixels: int
    channels: int
    PE: int
    dtype: BaseDataType
    in_groups: int = 1
    out_groups: int = 1

    def __post_init__(self) -> None:
        check_positive(self, ("pixels", "channels", "PE", "in_groups", "out_groups"), _WHERE)
        check_dtype(self.dtype, "dtype", _WHERE)
        if self.channels % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide channels={self.channels}", where=_WHERE)
        for name in ("in_groups", "out_groups"):
            if self.folds % getattr(self, name):
                raise HwgenError(f"{name}={getattr(self, name)} must divide the channel folds ({self.folds})",
                                 where=_WHERE)

    @property
    def folds(self) -> int:
        """Beats of one pixel."""
        return self.channels // self.PE

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.dtype, self.PE, self.pixels * self.folds),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return self.inputs

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        x = check_values(x, self.dtype, "Reorder input")
        return from_channel_last(to_channel_last(x, self.pixels, self.channels, self.in_groups), self.out_groups)

    def component(self) -> wiring.Component:
        return ReorderComponent(self)

    # -- estimates

    def held_fraction(self) -> float:
        """A frame being sent and the next, whole, in the other bank."""
        return 2.0

    def least_held_fraction(self) -> float:
        """The whole frame before the first beat out."""
        return 1.0

    def est_cycles(self) -> int:
        """A beat a clock on both sides at once."""
        return self.pixels * self.folds

    def _ram(self) -> tuple[int, int]:
        return 2 * self.pixels * self.folds, self.PE * self.dtype.bitwidth()

    def est_luts(self) -> int:
        """The banks' read mux, the output FIFO (LUT RAM), the two sides' address counters (four
        counts each where grouped) and a few of control."""
        depth, width = self._ram()
        counters = sum(4 if groups > 1 else 1 for groups in (self.in_groups, self.out_groups))
        return (max(memory_luts(depth, width), bram_read_mux_luts(depth, width)) + ram_luts(OUT_FIFO, width)
                + counters * depth.bit_length() + 12)

    def est_brams(self) -> int:
        return memory_bram18(*self._ram())


class ReorderComponent(wiring.Component):
    def __init__(self, unit: Reorder) -> None:
        self.unit = unit
        super().__init__(stream_ports(unit.inputs[0].width, unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        words, width = u.pixels * u.folds, u.outputs[0].width
        depth, _ = u._ram()
        m.submodules.banks = banks = Memory(shape=unsigned(width), depth=depth, init=[],
                                            attrs=memory_attrs(depth, width, rom=False))
        wp, rp = banks.write_port(), banks.read_port(domain="sync")
        full = Signal(2)  # a bank written whole and not yet read out

        # ---- in: the frame into the free bank, each beat at its channel-last place
        wbank = Signal()
        can_take = ~full.bit_select(wbank, 1)
        take = self.inp.valid & can_take
        woff, wlast = grouped_offset(m, take, u.pixels, u.folds, u.in_groups, name="woff")
        m.d.comb += [self.inp.ready.eq(can_take), wp.addr.eq(Mux(wbank, words, 0) + woff), wp.data.eq(self.inp.payload),
                     wp.en.eq(take)]

        # ---- out: the full bank read in the order asked for, into a small FIFO as far as it has room
        rbank = Signal()
        m.submodules.out_fifo = fifo = SyncFIFOBuffered(width=width, depth=OUT_FIFO)
        credits, pending = Signal(range(OUT_FIFO + 1), init=OUT_FIFO), Signal()
        issue = full.bit_select(rbank, 1) & (credits != 0)
        roff, rlast = grouped_offset(m, issue, u.pixels, u.folds, u.out_groups, name="roff")
        sent = self.out.valid & self.out.ready
        m.d.comb += [rp.addr.eq(Mux(rbank, words, 0) + roff), rp.en.eq(issue), fifo.w_data.eq(rp.data),
                     fifo.w_en.eq(pending), self.out.payload.eq(fifo.r_data), self.out.valid.eq(fifo.r_rdy),
                     fifo.r_en.eq(self.out.ready)]
        m.d.sync += [pending.eq(issue), credits.eq(credits - issue + sent)]
        with m.If(take & wlast):
            m.d.sync += [full.bit_select(wbank, 1).eq(1), wbank.eq(~wbank)]
        with m.If(issue & rlast):
            m.d.sync += [full.bit_select(rbank, 1).eq(0), rbank.eq(~rbank)]
        return m

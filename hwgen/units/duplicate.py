"""DuplicateStreams: one stream in, `copies` identical streams out (a tensor read by several units).

Each beat is offered on every output at once and taken from the input when every output has taken
it; an output that took it early waits (its `sent` flag) for the others, so the outputs may be
read at different moments without ever losing or repeating a beat. Input ready depends
combinationally on the outputs' ready: FIFOs sit on every edge around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from amaranth import Module, Signal
from amaranth.lib import wiring
from qonnx.core.datatype import BaseDataType

from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import check_dtype, check_int


class DuplicateComponent(wiring.Component):
    def __init__(self, width: int, copies: int) -> None:
        self.copies = copies
        super().__init__(stream_ports(width, [width] * copies))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        outs = [getattr(self, f"out{i}") for i in range(self.copies)]
        sent = [Signal(name=f"sent{i}") for i in range(self.copies)]
        done = [s | o.ready for s, o in zip(sent, outs)]
        all_done = done[0]
        for d in done[1:]:
            all_done = all_done & d
        m.d.comb += self.inp.ready.eq(all_done)
        for s, o in zip(sent, outs):
            m.d.comb += [o.payload.eq(self.inp.payload), o.valid.eq(self.inp.valid & ~s)]
            with m.If(self.inp.valid & all_done):
                m.d.sync += s.eq(0)
            with m.Elif(o.valid & o.ready):
                m.d.sync += s.eq(1)
        return m


@dataclass(frozen=True)
class DuplicateStreams(Unit):
    """`copies` outputs, each the input stream unchanged."""

    PLUMBING = True

    dtype: BaseDataType
    elems_per_beat: int
    beats_per_frame: int
    copies: int

    def __post_init__(self) -> None:
        check_dtype(self.dtype, "dtype", "DuplicateStreams")
        check_int(self.elems_per_beat, "elems_per_beat")
        check_int(self.beats_per_frame, "beats_per_frame")
        check_int(self.copies, "copies", minimum=2)

    @classmethod
    def stream_counts(cls, attrs: Mapping[str, object]) -> tuple[int, int]:
        return 1, int(attrs["copies"])

    @property
    def spec(self) -> StreamSpec:
        return StreamSpec(self.dtype, self.elems_per_beat, self.beats_per_frame)

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (self.spec,)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (self.spec,) * self.copies

    def reference(self, *frames: np.ndarray) -> tuple[np.ndarray, ...]:
        (x,) = frames
        return tuple(np.array(x, copy=True) for _ in range(self.copies))

    def component(self) -> wiring.Component:
        return DuplicateComponent(self.spec.width, self.copies)

    def est_cycles(self) -> int:
        return self.beats_per_frame

    def est_luts(self) -> int:
        return 2 * self.copies + 2  # the sent flags and the ready/valid gates; data is only wires

    def est_brams(self) -> int:
        return 0

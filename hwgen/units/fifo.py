"""StreamingFifo: a stream FIFO of `depth` beats, used to absorb rate mismatches between units.

Both handshake outputs (`inp.ready`, `out.valid`) come from registers, so a FIFO also cuts the
combinational ready/valid paths between the units on either side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from qonnx.core.datatype import BaseDataType

from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import check_dtype, check_int, memory_bram18, ram_luts

#: At or below this depth, or this many bits, the storage is distributed (LUT) RAM: a block RAM
#: would be mostly empty and its synchronous read would add a cycle of latency.
_LUTRAM_MAX_DEPTH = 64
_LUTRAM_MAX_BITS = 8192


class FifoComponent(wiring.Component):
    """`StreamingFifo`'s gateware: Amaranth's `SyncFIFO` (distributed RAM, asynchronous read, one
    beat per cycle from depth 2) or `SyncFIFOBuffered` (block-RAM friendly synchronous read)."""

    def __init__(self, width: int, depth: int, block_ram: bool) -> None:
        self.width = width
        self.depth = depth
        self.block_ram = block_ram
        super().__init__(stream_ports(width, width))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        fifo_cls = SyncFIFOBuffered if self.block_ram else SyncFIFO
        m.submodules.fifo = fifo = fifo_cls(width=self.width, depth=self.depth)
        m.d.comb += [
            fifo.w_data.eq(self.inp.payload),
            fifo.w_en.eq(self.inp.valid),
            self.inp.ready.eq(fifo.w_rdy),
            self.out.payload.eq(fifo.r_data),
            self.out.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.out.ready),
        ]
        return m


@dataclass(frozen=True)
class StreamingFifo(Unit):
    """A FIFO of `depth` beats of `elems_per_beat` elements of `dtype`; frames pass unchanged."""

    FOLDING = ()
    PLUMBING = True

    dtype: BaseDataType
    elems_per_beat: int
    beats_per_frame: int
    depth: int

    def __post_init__(self) -> None:
        check_dtype(self.dtype, "dtype", "StreamingFifo")
        check_int(self.elems_per_beat, "elems_per_beat")
        check_int(self.beats_per_frame, "beats_per_frame")
        # Depth 1 cannot take a beat in the cycle it gives one out: half throughput.
        check_int(self.depth, "depth", minimum=2)

    @property
    def spec(self) -> StreamSpec:
        return StreamSpec(self.dtype, self.elems_per_beat, self.beats_per_frame)

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (self.spec,)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (self.spec,)

    @property
    def ram_style(self) -> str:
        """`"distributed"` (LUT RAM) or `"block"` (18 Kb block RAM)."""
        width = self.spec.width
        small = self.depth <= _LUTRAM_MAX_DEPTH or width * self.depth <= _LUTRAM_MAX_BITS
        return "distributed" if small else "block"

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        return np.array(x, copy=True)

    def component(self) -> wiring.Component:
        return FifoComponent(self.spec.width, self.depth, self.ram_style == "block")

    def est_cycles(self) -> int:
        return self.beats_per_frame

    def est_luts(self) -> int:
        """Pointers, level and compares (4 per address bit and 3), and the LUT RAM (`ram_luts`; a
        2-deep FIFO of 196 bits: 139 LUTs by Yosys)."""
        addr = max(1, math.ceil(math.log2(self.depth)))
        control = 4 * addr + 3
        if self.ram_style == "block":
            return control
        return control + ram_luts(self.depth, self.spec.width)

    def est_brams(self) -> int:
        if self.ram_style == "distributed":
            return 0
        # SyncFIFOBuffered keeps depth - 1 entries in memory and one in its output register.
        return memory_bram18(self.depth - 1, self.spec.width)

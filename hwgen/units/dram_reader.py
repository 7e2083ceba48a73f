"""DramReader: a layer's weights read from DRAM once per frame, as a stream of bus words.

    token (one beat per frame)  ->  DramReader  ->  the image's words, one per beat
                                        |
                                 AXI4 read master (m_axi_*), at dram_base + offset

The weights of a layer whose on-chip memory the part cannot spare live in DRAM: an image of
`words` bus words at byte `offset` from `dram_base` (4 KB aligned, so that no burst crosses a 4 KB
boundary). Each token asks for the image once; the reader takes up to `MAX_FRAMES_AHEAD` tokens,
so the next frame's first bursts are read while the consumer still finishes this one.

Four bursts in flight (`outstanding`) keep one word per clock coming through a read latency of
up to some 40 cycles (a DDR controller behind the PS interconnect takes 20 to 40 fabric cycles).

Flow control by credits: a burst is requested only when the FIFO has room for all of it, counting
the bursts in flight (`burst` x `outstanding` words of FIFO), so the data channel is never held
up (`rready` is the FIFO's room, high whenever data comes) and a slow consumer only slows the
requests. The address is summed in registered steps (the offset, then two 16-bit halves) over
three cycles after each request, far fewer than a burst's beats, so requests still follow each other closely
enough to keep the bus busy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.rtl.axi import ADDR_BITS, BURST_BOUNDARY, MAX_BURST, axi_read_members
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import check_values, ram_luts

_WHERE = "DramReader"
#: tokens (frames' images) the reader takes before the first is read out
MAX_FRAMES_AHEAD = 2
#: cycles from a request to the next burst's address: offset, low half, high half
SETTLE = 3
#: bus widths of the PS slave ports (`hwgen.deploy.boards`: hp_port.data_width)
BUS_BITS = (32, 64, 128)


@dataclass(frozen=True, eq=False)
class DramReader(Unit):
    """Read `image` (uint8, a whole number of `data_bits` words) at `offset` bytes from the DRAM
    base once per token, in bursts of up to `burst` words with up to `outstanding` in flight."""

    FOLDING = ()

    image: np.ndarray
    data_bits: int = 64
    offset: int = 0
    burst: int = MAX_BURST
    outstanding: int = 4

    def __post_init__(self) -> None:
        if self.data_bits not in BUS_BITS:
            raise HwgenError(f"data_bits must be one of {BUS_BITS}, not {self.data_bits!r}", where=_WHERE)
        image = np.asarray(self.image)
        if image.dtype != np.uint8 or image.ndim != 1 or image.size == 0 or image.size % self.word_bytes:
            raise HwgenError(f"image must be a non-empty uint8 vector of whole {self.word_bytes}-byte words, "
                             f"got {image.dtype} {image.shape}", where=_WHERE)
        object.__setattr__(self, "image", image)
        if not isinstance(self.offset, int) or self.offset < 0 or self.offset % BURST_BOUNDARY:
            raise HwgenError(f"offset must be a multiple of {BURST_BOUNDARY} bytes, not {self.offset!r}", where=_WHERE)
        if self.offset + image.size > 1 << ADDR_BITS:
            raise HwgenError(f"the image ends beyond the {ADDR_BITS}-bit address space", where=_WHERE)
        if not 1 <= self.burst <= MAX_BURST or self.burst & (self.burst - 1):
            raise HwgenError(f"burst must be a power of two up to {MAX_BURST}, not {self.burst!r}", where=_WHERE)
        if not isinstance(self.outstanding, int) or self.outstanding < 1:
            raise HwgenError(f"outstanding must be at least 1, not {self.outstanding!r}", where=_WHERE)

    @property
    def word_bytes(self) -> int:
        return self.data_bits // 8

    @property
    def words(self) -> int:
        return self.image.size // self.word_bytes

    @property
    def fifo_depth(self) -> int:
        return self.burst * self.outstanding

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(DataType["BINARY"], 1, 1),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(DataType["UINT8"], self.word_bytes, self.words),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (tokens,) = frames
        tokens = check_values(tokens, DataType["BINARY"], "DramReader token")
        return np.tile(self.image.astype(np.int64), (tokens.shape[0], 1))

    def component(self) -> wiring.Component:
        return DramReaderComponent(self)

    def dram_bytes_per_frame(self) -> int:
        return int(self.image.size)

    def est_cycles(self) -> int:
        """One word per clock at best (what the DRAM gives is the parts table's `dram` limit)."""
        return self.words

    def est_luts(self) -> int:
        return reader_luts(self.words, self.data_bits, self.burst * self.outstanding)

    def est_brams(self) -> int:
        return 0


def reader_luts(words: int, data_bits: int, fifo_depth: int = MAX_BURST * 4) -> int:
    """LUTs of a reader of `words` bus words: the FIFO in LUT RAM, its pointers, the address
    halves and the counters."""
    counters = 2 * max(1, (words - 1).bit_length()) + 3 * max(1, fifo_depth.bit_length())
    return ram_luts(fifo_depth, data_bits) + ADDR_BITS + counters + 12


class DramReaderComponent(wiring.Component):
    def __init__(self, unit: DramReader) -> None:
        self.unit = unit
        super().__init__({**stream_ports(1, unit.data_bits), **axi_read_members(unit.data_bits)})

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=u.data_bits, depth=u.fifo_depth)
        words, burst, depth = u.words, u.burst, u.fifo_depth
        shift = u.word_bytes.bit_length() - 1

        # tokens taken, images not yet wholly requested
        frames = Signal(range(MAX_FRAMES_AHEAD + 1))
        token = self.inp.valid & self.inp.ready
        m.d.comb += self.inp.ready.eq(frames < MAX_FRAMES_AHEAD)

        # FIFO words not promised to a burst in flight
        credits = Signal(range(depth + 1), init=depth)
        out_fire = self.out.valid & self.out.ready
        m.d.comb += [self.out.payload.eq(fifo.r_data), self.out.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.out.ready),
                     fifo.w_data.eq(self.m_axi_rdata), fifo.w_en.eq(self.m_axi_rvalid),
                     self.m_axi_rready.eq(fifo.w_rdy)]

        # the next burst: its first word, whether it is the image's last, its length
        beat = Signal(range(words))
        tail = words - (words - 1) // burst * burst  # words of the image's last burst
        last_start = words - tail
        is_last = Signal()
        m.d.sync += is_last.eq(beat == last_start)  # settles in the cycles after a request
        length = Mux(is_last, tail, burst)

        # address: dram_base + offset + beat * word bytes, in two registered halves
        offset = Signal(ADDR_BITS)
        m.d.sync += offset.eq(u.offset + (beat << shift))
        low, high = Signal(17), Signal(ADDR_BITS - 16)
        m.d.sync += [low.eq(self.dram_base[:16] + offset[:16]),
                     high.eq(self.dram_base[16:] + offset[16:] + low[16])]
        settle = Signal(range(SETTLE + 1), init=SETTLE)  # cycles until the address of `beat` is in low and high

        arvalid = Signal()
        m.d.comb += [self.m_axi_arvalid.eq(arvalid), self.m_axi_araddr.eq(Cat(low[:16], high))]
        arlen = Signal(8)
        m.d.comb += self.m_axi_arlen.eq(arlen)
        issue = ~arvalid & (settle == 0) & (frames != 0) & (credits >= burst)
        done = Signal()  # the request of an image's last burst
        with m.If(settle != 0):
            m.d.sync += settle.eq(settle - 1)
        with m.If(issue):
            m.d.sync += [arvalid.eq(1), arlen.eq(length - 1)]
        with m.If(arvalid & self.m_axi_arready):
            m.d.sync += [arvalid.eq(0), settle.eq(SETTLE)]
            with m.If(is_last):
                m.d.sync += beat.eq(0)
            with m.Else():
                m.d.sync += beat.eq(beat + burst)
        m.d.comb += done.eq(issue & is_last)
        m.d.sync += frames.eq(frames + token - done)
        m.d.sync += credits.eq(credits + out_fire - Mux(issue, length, 0))
        return m


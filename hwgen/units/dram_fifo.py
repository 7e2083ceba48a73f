"""DramFifo: a stream FIFO whose storage is a ring in DRAM, for a shortcut that must hold more of a
frame than block RAM can spare (an 8-bit shortcut beside a window generator's rows).

    StreamingFifo(depth=d)   =>   DramFifo(depth=d, data_bits, offset)

    in -> pack -> write bursts (AXI4 write: m_axi_aw*, w*, b*) -> ring at dram_base + offset
                  ring -> read bursts (AXI4 read: m_axi_ar*, r*) -> unpack -> out

Packing: a bus word carries `slots` = data_bits // (beat bits + 1) beats, each with a valid bit
(8-bit beats on a 64-bit bus: 7 a word). A word goes out full, with a frame's last beat, or part
full when no beat has come for `flush_cycles` (the fork before a shortcut stalls until the join
after it takes a beat, which may be in this word): the valid bits say how many beats it holds, so
the reader needs no count beside the data. `flush_cycles` should exceed the stream's usual gap
between beats (`SpillFifos` sets twice it, and 8), or slow streams send words part full. A
closed word goes to the write FIFO from its register the cycle after, once that FIFO has room;
the next beat may start a new word meanwhile, the one after waits.

Writing: words wait in a small FIFO (LUT RAM) and go out as soon as the write channel is free,
all that are there in one burst of up to `MAX_BURST` words that never crosses a `MAX_BURST`-word
boundary of the ring (so never a 4 KB one): one write burst in flight, so the words that come
while it is answered make the next; a word counts as in the ring once its burst is answered.

Reading: every word in the ring is read back in bursts up to the same boundaries, as soon as it
is there, one burst in flight, each requested only when the read FIFO has room for all of it
(credits, as `DramReader`), so `rready` never drops. The ring holds `ring_words` words: a power
of two of at least `depth` words (one beat a word where beats trickle in slower than the flush),
and the writer waits while the words not yet read back fill it.

DRAM traffic: each beat is written and read once, `slots` to a word where the stream runs
steadily: 2 x ceil(beats / slots) words a frame (`dram_bytes_per_frame`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered

from hwgen.errors import HwgenError
from hwgen.rtl.axi import ADDR_BITS, BURST_BOUNDARY, MAX_BURST, axi_read_members, axi_write_members
from hwgen.units.base import stream_ports
from hwgen.units.datapath import ram_luts
from hwgen.units.fifo import StreamingFifo
from hwgen.units.dram_reader import BUS_BITS

_WHERE = "DramFifo"
#: cycles without a new beat after which a part-full word goes out, unless given
FLUSH_CYCLES = 1024
#: words of the write and read FIFOs on chip: two bursts each
BUFFER_WORDS = 2 * MAX_BURST
#: cycles after a burst before the next on that side: the registered size and checks settle
SETTLE = 3


@dataclass(frozen=True)
class DramFifo(StreamingFifo):
    """A FIFO of at least `depth` beats of `elems_per_beat` elements of `dtype`, held in a ring of
    DRAM at `offset` bytes from the DRAM base, over a `data_bits` bus; frames pass unchanged."""

    data_bits: int = 64
    offset: int = 0
    flush_cycles: int = FLUSH_CYCLES

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data_bits not in BUS_BITS:
            raise HwgenError(f"data_bits must be one of {BUS_BITS}, not {self.data_bits!r}", where=_WHERE)
        if self.slots < 1:
            raise HwgenError(f"a beat of {self.spec.width} bits and its valid bit do not fit a {self.data_bits}-bit "
                             "bus word", where=_WHERE)
        if not isinstance(self.offset, int) or self.offset < 0 or self.offset % self.dram_alignment():
            raise HwgenError(f"offset must be a multiple of {self.dram_alignment()} bytes (4 KB and its ring's size), "
                             f"not {self.offset!r}", where=_WHERE)
        if not isinstance(self.flush_cycles, int) or self.flush_cycles < 1:
            raise HwgenError(f"flush_cycles must be at least 1, not {self.flush_cycles!r}", where=_WHERE)
        if self.offset + self.dram_image_bytes() > 1 << ADDR_BITS:
            raise HwgenError(f"the ring ends beyond the {ADDR_BITS}-bit address space", where=_WHERE)

    @property
    def slots(self) -> int:
        """Beats a bus word carries, each with its valid bit."""
        return self.data_bits // (self.spec.width + 1)

    @property
    def word_bytes(self) -> int:
        return self.data_bits // 8

    @property
    def ring_words(self) -> int:
        """Words of the ring: a power of two, at least `depth` (a beat a word at worst) and two
        bursts."""
        return 1 << (max(BUFFER_WORDS, self.depth) - 1).bit_length()

    def component(self) -> wiring.Component:
        return DramFifoComponent(self)

    def dram_image(self) -> np.ndarray:
        """The ring's initial contents: nothing is read before it is written."""
        return np.zeros(self.dram_image_bytes(), np.uint8)

    def dram_image_bytes(self) -> int:
        return self.ring_words * self.word_bytes

    def dram_alignment(self) -> int:
        """The ring's size (and at least 4 KB): the DRAM base and the ring's offset are multiples
        of it, so a word's address is the ring's base with the word's index in its low bits."""
        return max(BURST_BOUNDARY, self.dram_image_bytes())

    def dram_bytes_per_frame(self) -> int:
        """Each beat written and read once, `slots` a word."""
        return 2 * math.ceil(self.beats_per_frame / self.slots) * self.word_bytes

    def dram_writes(self) -> bool:
        return True

    def est_cycles(self) -> int:
        return self.beats_per_frame

    def est_luts(self) -> int:
        """The write and read FIFOs in LUT RAM and the read FIFO's output register; packing (a LUT
        a bit of the word: the slot's beat, kept, or cleared once the word is written); the
        unpacking mux (a LUT per bit per two slots); the ring's pointers and counts and their
        compares (six LUTs per bit of a ring address); the adder of the ring's base (its bits above
        the ring's: a word's address needs none, `dram_alignment`), the frame's beat count, the
        idle count and the control. Within 6 % of Yosys on 8-bit beats over a 64-bit bus and
        12-bit beats over a 128-bit one (`tests/test_estimates.py`)."""
        width, slots = self.spec.width, self.slots
        fifos = 2 * ram_luts(BUFFER_WORDS, self.data_bits) + self.data_bits
        packing = slots * (width + 1)
        unpacking = width * math.ceil(slots / 2)
        ring = 6 * (self.ring_words.bit_length() - 1)
        base = ADDR_BITS - (self.dram_image_bytes().bit_length() - 1)
        fixed = base + self.beats_per_frame.bit_length() + self.flush_cycles.bit_length() + 80
        return fifos + packing + unpacking + ring + fixed

    def est_brams(self) -> int:
        return 0


class DramFifoComponent(wiring.Component):
    """See the module docstring."""

    def __init__(self, unit: DramFifo) -> None:
        self.unit = unit
        width = unit.spec.width
        super().__init__({**stream_ports(width, width), **axi_read_members(unit.data_bits),
                          **axi_write_members(unit.data_bits)})

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        width, slots, bits = u.spec.width, u.slots, u.data_bits
        slot_bits = width + 1
        ring = u.ring_words
        shift = u.word_bytes.bit_length() - 1
        m.submodules.wbuf = wbuf = SyncFIFO(width=bits, depth=BUFFER_WORDS)
        m.submodules.rbuf = rbuf = SyncFIFOBuffered(width=bits, depth=BUFFER_WORDS)  # its head in a register
        # the ring's base: dram_base and the offset are multiples of the ring's size (`dram_alignment`),
        # so its low bits are zero and a word's address is the base with the word's index there
        low = u.dram_image_bytes().bit_length() - 1
        ring_high = Signal(ADDR_BITS - low)
        m.d.sync += ring_high.eq(self.dram_base[low:] + (u.offset >> low))

        # ---- pack: beats into the word register; a word closes when full, at a frame's end or
        # after flush_cycles idle, and goes to the write FIFO from the register the cycle after
        # (no mux before the FIFO: a LUT a bit), while the next beat starts a fresh word
        word = Signal(bits)
        fill = Signal(range(slots + 1))
        closed = Signal()  # `word` is complete and waits for the write FIFO
        idle = Signal(range(u.flush_cycles + 1))
        take = self.inp.valid & self.inp.ready
        pos = Signal(range(u.beats_per_frame))  # of the next beat in its frame
        at_end = Signal(init=u.beats_per_frame == 1)  # the next beat is its frame's last
        with m.If(take):
            m.d.sync += [pos.eq(Mux(at_end, 0, pos + 1)),
                         at_end.eq(Mux(at_end, u.beats_per_frame == 1, pos == u.beats_per_frame - 2))]
        stale = Signal()  # no beat for flush_cycles
        m.d.sync += stale.eq(~take & (fill != 0) & (idle >= u.flush_cycles - 1))
        flushing = ~take & ~closed & (fill != 0) & stale
        written = (closed | flushing) & wbuf.w_rdy
        m.d.comb += [self.inp.ready.eq(~closed | wbuf.w_rdy),
                     wbuf.w_en.eq(closed | flushing), wbuf.w_data.eq(word)]
        start = Signal(range(slots))  # the slot the next beat takes
        m.d.comb += start.eq(Mux(closed, 0, fill))
        with m.If(take):
            for s in range(slots):
                here = word[s * slot_bits:(s + 1) * slot_bits]
                with m.If(start == s):
                    m.d.sync += here.eq(Cat(self.inp.payload, Const(1, 1)))
                with m.Elif(closed):
                    m.d.sync += here.eq(0)
            m.d.sync += [fill.eq(start + 1), closed.eq((start == slots - 1) | at_end)]
        with m.Elif(written):
            m.d.sync += [word.eq(0), fill.eq(0), closed.eq(0)]
        with m.If(take | (fill == 0) | flushing):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != u.flush_cycles):
            m.d.sync += idle.eq(idle + 1)

        # ---- write: bursts to the ring, one in flight. The burst's size and whether it may go are
        # registered in steps (its distance to the boundary, its size, the check): after a burst
        # each side waits `SETTLE` cycles for them to follow the new pointer, and while it waits its
        # words and room only grow, so a value a few cycles old never asks for too much
        ptr_bits = ring.bit_length() - 1
        edge_bits = MAX_BURST.bit_length() - 1
        w_ptr = Signal(ptr_bits)  # the ring's next word to write (wraps with the ring)
        occupied = Signal(range(ring + 1))  # words of the ring asked for and not yet read back
        w_len = Signal(range(MAX_BURST + 1))
        w_left = Signal(range(MAX_BURST + 1))
        w_to_edge, w_count, w_ok = Signal(range(MAX_BURST + 1)), Signal(range(MAX_BURST + 1)), Signal()
        m.d.sync += [w_to_edge.eq(MAX_BURST - w_ptr[:edge_bits]),
                     w_count.eq(Mux(wbuf.level < w_to_edge, wbuf.level, w_to_edge)),
                     w_ok.eq((wbuf.level != 0) & (occupied <= ring - MAX_BURST))]
        awvalid, wphase, bphase = Signal(), Signal(), Signal()
        w_settle = Signal(range(SETTLE + 1), init=SETTLE)
        w_issue = ~(awvalid | wphase | bphase) & (w_settle == 0) & w_ok
        with m.If(awvalid | wphase | bphase):
            m.d.sync += w_settle.eq(SETTLE)
        with m.Elif(w_settle != 0):
            m.d.sync += w_settle.eq(w_settle - 1)
        awaddr = Signal(ADDR_BITS)
        awlen = Signal(8)
        m.d.comb += [self.m_axi_awaddr.eq(awaddr), self.m_axi_awlen.eq(awlen), self.m_axi_awvalid.eq(awvalid)]
        w_address = Cat(Const(0, shift), w_ptr, ring_high)
        with m.If(w_issue):
            m.d.sync += [awvalid.eq(1), awlen.eq(w_count - 1), w_len.eq(w_count), w_left.eq(w_count),
                         awaddr.eq(w_address)]
        with m.If(awvalid & self.m_axi_awready):
            m.d.sync += [awvalid.eq(0), wphase.eq(1), w_ptr.eq(w_ptr + w_len)]
        w_fire = wphase & self.m_axi_wready & wbuf.r_rdy
        m.d.comb += [self.m_axi_wvalid.eq(wphase & wbuf.r_rdy), self.m_axi_wdata.eq(wbuf.r_data),
                     self.m_axi_wlast.eq(w_left == 1), wbuf.r_en.eq(w_fire), self.m_axi_bready.eq(bphase)]
        with m.If(w_fire):
            m.d.sync += w_left.eq(w_left - 1)
            with m.If(w_left == 1):
                m.d.sync += [wphase.eq(0), bphase.eq(1)]
        answered = bphase & self.m_axi_bvalid
        with m.If(answered):
            m.d.sync += bphase.eq(0)

        # ---- read: every answered word back, in bursts, one in flight, with room for all of it
        r_ptr = Signal(ptr_bits)
        pending = Signal(range(ring + 1))  # words answered and not yet asked for
        credits = Signal(range(BUFFER_WORDS + 1), init=BUFFER_WORDS)
        r_to_edge, r_count, r_ok = Signal(range(MAX_BURST + 1)), Signal(range(MAX_BURST + 1)), Signal()
        m.d.sync += [r_to_edge.eq(MAX_BURST - r_ptr[:edge_bits]),
                     r_count.eq(Mux(pending < r_to_edge, pending, r_to_edge)),
                     r_ok.eq((r_count != 0) & (credits >= r_count))]
        arvalid, rphase = Signal(), Signal()
        r_settle = Signal(range(SETTLE + 1), init=SETTLE)
        r_issue = ~arvalid & ~rphase & (r_settle == 0) & r_ok
        with m.If(arvalid | rphase):
            m.d.sync += r_settle.eq(SETTLE)
        with m.Elif(r_settle != 0):
            m.d.sync += r_settle.eq(r_settle - 1)
        araddr = Signal(ADDR_BITS)
        arlen = Signal(8)
        r_len = Signal(range(MAX_BURST + 1))
        m.d.comb += [self.m_axi_araddr.eq(araddr), self.m_axi_arlen.eq(arlen), self.m_axi_arvalid.eq(arvalid)]
        r_address = Cat(Const(0, shift), r_ptr, ring_high)
        with m.If(r_issue):
            m.d.sync += [arvalid.eq(1), arlen.eq(r_count - 1), r_len.eq(r_count), araddr.eq(r_address)]
        with m.If(arvalid & self.m_axi_arready):
            m.d.sync += [arvalid.eq(0), rphase.eq(1), r_ptr.eq(r_ptr + r_len)]
        # a burst is asked for only with room for all of it: the read FIFO always takes the data
        r_fire = self.m_axi_rvalid
        m.d.comb += [self.m_axi_rready.eq(1), rbuf.w_data.eq(self.m_axi_rdata), rbuf.w_en.eq(r_fire)]
        with m.If(r_fire & self.m_axi_rlast):
            m.d.sync += rphase.eq(0)
        # the counts follow a burst's request a cycle later (a short path into their adders), long
        # before the side that asked looks at them again
        w_taken, r_taken = Signal(range(MAX_BURST + 1)), Signal(range(MAX_BURST + 1))
        m.d.sync += [w_taken.eq(Mux(w_issue, w_count, 0)), r_taken.eq(Mux(r_issue, r_count, 0)),
                     occupied.eq(occupied + w_taken - r_fire),
                     pending.eq(pending + Mux(answered, w_len, 0) - r_taken)]

        # ---- unpack: the valid slots of each word, in order
        slot = Signal(range(slots))
        payloads = [rbuf.r_data[s * slot_bits:s * slot_bits + width] for s in range(slots)]
        valids = [rbuf.r_data[s * slot_bits + width] for s in range(slots)]
        payload, valid, last = Signal(width), Signal(), Signal()
        for s in range(slots):
            with m.If(slot == s):
                m.d.comb += [payload.eq(payloads[s]), valid.eq(valids[s]),
                             last.eq(1 if s == slots - 1 else ~valids[s + 1])]
        # into a two-beat FIFO, so that what the next unit sees comes from registers
        m.submodules.obuf = obuf = SyncFIFO(width=width, depth=2)
        unpacked = obuf.w_rdy & rbuf.r_rdy & valid
        pop = unpacked & last
        m.d.comb += [obuf.w_data.eq(payload), obuf.w_en.eq(unpacked), rbuf.r_en.eq(pop),
                     self.out.payload.eq(obuf.r_data), self.out.valid.eq(obuf.r_rdy), obuf.r_en.eq(self.out.ready)]
        with m.If(unpacked):
            m.d.sync += slot.eq(Mux(last, 0, slot + 1))
        m.d.sync += credits.eq(credits + pop - Mux(r_issue, r_count, 0))
        return m


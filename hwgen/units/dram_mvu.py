"""DramMVU: a matrix-vector unit whose weights stream from DRAM (weight-stationary), in passes.

    input (V vectors a frame, R passes of V/R)  ->  ping-pong buffer  --+
                                                                        +-> per pass: for each tile nf of PE outputs:
    DRAM --AXI4--> DramReader -> tiles  --------------------------------+     for each vector v of the pass: for each fold sf:
                                                                                 acc += W[nf, sf] . x[v, sf]
                                                 -> ping-pong output buffer [v, nf]  -> out, vector by vector

A layer with a small feature map and many weights (ReActNet-A's 14x14 and 7x7 stages hold 34.7 of
its 36.5 Mbit) keeps its weights in DRAM: an on-chip MVU re-reads every weight for every vector,
which from DRAM would cost the weights times the vectors per frame in bandwidth. This unit turns
the loops around: it holds the vectors of a pass (V/R of the frame's V), takes the weights one tile
(PE outputs x MW inputs, SF words of the on-chip MVU's weight ROM) at a time, computes that tile
for every vector of the pass, and writes the results into an output buffer that it then sends out
in the order an MVU sends (vector by vector, PE per beat). Each weight is read from DRAM once per
pass: bandwidth = passes x weight bits x frame rate.

Passes trade DRAM bandwidth for block RAM: the buffers hold a pass, not a frame, and a whole frame
of accumulators can outweigh the weights (ReActNet-A's 3x3 layers at 14x14: 1.4 Mbit of 14-bit
results against 2.4 Mbit of weights), so one pass would save little block RAM there. Folding
chooses the passes (`plan_of`) with the DRAM bandwidth as a constraint.

Every buffer is doubled, so the three sides run at once: the next pass arrives while one is
computed and the one before is sent, and a chain of these units runs at its slowest one's rate.
With one bank of input and output (`banks=1`, half their block RAM, set by a hand folding) a
pass's input and output wait for its compute, and in a pipeline folded for one rate the
neighbours take as long again: folding keeps two.
The tiles are double-buffered too: while one is computed, the next arrives through `DramReader`
(its bus words gathered into weight words, `word_bits / data_bits` each; or, for a word narrower
than the bus, several words to a bus word, each in a slot of a power of two bits: `slot_bits_of`),
so the DRAM keeps pace while a tile's compute (V/R x SF cycles) takes at least as long as its load
(SF x bus words per weight word cycles, or SF / words per bus word). The dot products are the on-chip MVU's (`mvu.lane_dots`), so the arithmetic
is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory, ReadPort
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.rtl.axi import axi_read_members, connect, dram_member_names
from hwgen.units.base import StreamSpec, Unit, divisors, stream_ports
from hwgen.units.datapath import bram_read_mux_luts, memory_attrs, memory_bram18, memory_luts, wrap_inc
from hwgen.units.dram_reader import DramReader, DramReaderComponent, reader_luts
from hwgen.units.mvu import MVU, lane_dots, weight_words
from hwgen.units.thresholding import threshold_lane, threshold_words
_WHERE = "DramMVU"
#: beats of the output side's FIFO (the output buffer's reads run ahead of the stream by this)
OUT_FIFO = 4
#: cycles from a one-bank unit's last step of a pass to its output's first beat (the dot
#: products' and the accumulators' pipeline, the bank's read): exact in rtlsim at SIMD 16 to 32,
#: one or two over for shallower dot products
BANK_TURN = 6


@dataclass(frozen=True, eq=False)
class DramMVU(Unit):
    """An MVU (`hwgen.units.mvu`: the accumulators, or their thresholds) over `vectors_per_frame`
    vectors a frame in `passes` passes, its weights read from DRAM once a pass at `offset` bytes
    from the DRAM base over a `data_bits` bus (the fields are the MVU's, and those three; its
    products in LUTs or DSPs as folding chose for the MVU it replaces)."""

    #: not folded: it takes the folding of the MVU it replaces (`ChooseWeightMemories`, after folding)
    FOLDING = ()

    MW: int
    MH: int
    PE: int
    SIMD: int
    input_dtype: BaseDataType
    weight_dtype: BaseDataType
    weights: np.ndarray
    thresholds: np.ndarray | None
    output_dtype: BaseDataType
    out_bias: int = 0
    vectors_per_frame: int = 1
    data_bits: int = 64
    offset: int = 0
    passes: int = 1
    #: banks of the input and output buffers: 2, so that a pass arrives and the one before is
    #: sent while one is computed; or 1, half their block RAM, the compute waiting while they do
    #: (a pass's input and output take V/R x SF and V/R x NF cycles, its compute NF x V/R x SF)
    banks: int = 2
    products_in_luts: bool = False
    packed_products: bool = False
    _mvu: MVU = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # the on-chip MVU of the same layer checks the parameters and gives the arithmetic
        mvu = MVU(self.MW, self.MH, self.PE, self.SIMD, self.input_dtype, self.weight_dtype, self.weights,
                  self.thresholds, self.output_dtype, self.out_bias, vectors_per_frame=self.vectors_per_frame,
                  products_in_luts=self.products_in_luts, packed_products=self.packed_products)
        object.__setattr__(self, "_mvu", mvu)
        object.__setattr__(self, "weights", mvu.weights)
        object.__setattr__(self, "thresholds", mvu.thresholds)
        _ = self.reader  # checks data_bits and offset
        if not isinstance(self.passes, (int, np.integer)) or self.passes < 1 or self.vectors_per_frame % self.passes:
            raise HwgenError(f"passes={self.passes} must divide vectors_per_frame={self.vectors_per_frame}",
                             where=_WHERE)
        if self.banks not in (1, 2):
            raise HwgenError(f"banks={self.banks} must be 1 or 2", where=_WHERE)

    @property
    def NF(self) -> int:
        return self.MH // self.PE

    @property
    def SF(self) -> int:
        return self.MW // self.SIMD

    @property
    def word_bits(self) -> int:
        return word_bits_of(self._mvu)

    @property
    def slot_bits(self) -> int:
        """Bits a weight word takes in the DRAM image (`slot_bits_of`)."""
        return slot_bits_of(self.word_bits, self.data_bits)

    @cached_property
    def reader(self) -> DramReader:
        """The unit's DRAM reader: the weight words, tile by tile, each in its slot (`slot_bits`),
        as bytes."""
        return weight_reader(self._mvu, self.data_bits, self.offset)

    def dram_image(self) -> np.ndarray:
        """The bytes the DRAM holds at `offset` for this unit."""
        return self.reader.image

    # -- interface

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return self._mvu.inputs

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return self._mvu.outputs

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        return self._mvu.reference(*frames)

    def component(self) -> wiring.Component:
        return DramMVUComponent(self)

    def dram_image_bytes(self) -> int:
        return self.reader.dram_bytes_per_frame()

    def dram_bytes_per_frame(self) -> int:
        return self.passes * self.dram_image_bytes()

    # -- estimates

    def held_fraction(self) -> float:
        """The pass being computed, the next one arriving and the one before being sent: with one
        pass, up to three frames (a shortcut beside it buffers them); with one bank, the next
        arrives while the one before is sent: two."""
        return (1 + self.banks) / self.passes

    def least_held_fraction(self) -> float:
        """A whole pass before its first output."""
        return 1 / self.passes

    def est_cycles(self) -> int:
        return self.plan.cycles

    def parameter_memories(self) -> list[tuple[int, int, str]]:
        """The thresholds only: the weights are in DRAM."""
        return [m for m in self._mvu.parameter_memories() if m[2] != "weights"]

    @cached_property
    def plan(self) -> DramPlan:
        return plan_of(self._mvu, self.data_bits, self.passes, self.banks)

    def est_luts(self) -> int:
        return self.plan.luts

    def est_brams(self) -> int:
        return self.plan.brams

    def est_dsps(self) -> int:
        return self._mvu.est_dsps()


@dataclass(frozen=True)
class DramPlan:
    """The estimates of the DramMVU that would take an on-chip MVU's folding, from shapes alone
    (no weight image is made): what folding weighs against keeping the weights on chip."""

    cycles: int
    luts: int
    brams: int
    dsps: int
    dram_bytes: int


def word_bits_of(mvu: MVU) -> int:
    """Bits of one weight word of `mvu` (PE x SIMD weights): what a DramMVU reads per step."""
    return mvu.PE * mvu.SIMD * mvu.weight_dtype.bitwidth()


def slot_bits_of(word_bits: int, data_bits: int) -> int:
    """Bits a weight word of `word_bits` takes in the DRAM image on a `data_bits` bus: whole bus
    words where it is at least one (padded up to them), else the least power of two that holds
    it, so that a bus word carries a whole number of weight words (a 5-bit weight alone takes 8
    bits of a 64-bit word, eight to a word). A folding whose words fill whole bus words wastes
    none of the bandwidth."""
    if word_bits >= data_bits:
        return -(-word_bits // data_bits) * data_bits
    return 1 << (word_bits - 1).bit_length()


def weight_reader(mvu: MVU, data_bits: int, offset: int) -> DramReader:
    """The DRAM reader of `mvu`'s weight words, tile by tile (`weight_words`), each in its slot
    (`slot_bits_of`), at `offset` over a `data_bits` bus."""
    words, slot = weight_words(mvu), slot_bits_of(word_bits_of(mvu), data_bits)
    if slot >= data_bits:
        chunks = [w.to_bytes(slot // 8, "little") for w in words]
    else:  # a bus word holds data / slot words, the first in its lowest bits; the last one padded
        per_bus = data_bits // slot
        chunks = [sum(w << (i * slot) for i, w in enumerate(words[b:b + per_bus])).to_bytes(data_bits // 8, "little")
                  for b in range(0, len(words), per_bus)]
    return DramReader(np.frombuffer(b"".join(chunks), np.uint8), data_bits, offset)


def bus_words_per_pass(words: int, word_bits: int, data_bits: int) -> int:
    """Bus words of an image of `words` weight words, each in its slot (`slot_bits_of`)."""
    slot = slot_bits_of(word_bits, data_bits)
    return words * slot // data_bits if slot >= data_bits else -(-words // (data_bits // slot))


def can_stream(mvu: MVU, bus_bits: int, padded: bool = False) -> bool:
    """Whether `mvu`'s weights can stream from DRAM as folded: folding did not put them in LUTs,
    and its weight words are whole words of a `bus_bits` bus, or any size with `padded` (each in
    its slot: `slot_bits_of`)."""
    return not mvu.weights_in_luts and (padded or word_bits_of(mvu) % bus_bits == 0)


def pass_choices(vectors: int) -> list[int]:
    """The passes a layer of `vectors` vectors a frame can take: the divisors of `vectors`."""
    return divisors(vectors)


def plan_of(mvu: MVU, data_bits: int, passes: int = 1, banks: int = 2) -> DramPlan:
    """`DramPlan` of `mvu`'s layer and folding with its weights in DRAM over a `data_bits` bus,
    in `passes` passes a frame, its input and output buffers of `banks` banks.

    cycles: with two banks, the slowest of the three sides, which run at once: the compute (per
    pass NF x V/R x SF steps and a cycle to start the next), taking the input (V x SF beats),
    sending the output (V x NF beats); or, where the bus is slower, its words (R x NF x SF weight
    words of `word_bits / data_bits` bus words each). With one bank, per pass the compute and
    then the longer of the next pass's input and this one's output, which run at once (the
    output `BANK_TURN` cycles after the compute's last step); or where the bus is slower, its
    words (the weight tiles are still two, and load while the banks turn over).
    LUTs: the on-chip MVU's dot products and accumulators (its estimate without its weight ROM),
    the buffers' read muxes (across the block RAMs of a deep buffer: `bram_read_mux_luts`), the
    reader, the counters (the word gathering is flip-flops).
    BRAM: `banks` passes of input, the two weight tiles, `banks` passes of output and the thresholds.
    DRAM: the weights once a pass."""
    v, sf, nf = mvu.vectors_per_frame, mvu.SF, mvu.NF
    vp = v // passes
    word_bits = word_bits_of(mvu)
    bus_words = bus_words_per_pass(nf * sf, word_bits, data_bits)
    compute = passes * (nf * vp * sf + 1)
    if banks == 2:
        cycles = max(passes * bus_words, compute, v * sf, v * nf)
    else:
        cycles = passes * max(bus_words, nf * vp * sf + 1 + max(vp * sf, vp * nf + BANK_TURN))
    thresholds = [(d, w) for d, w, role in mvu.parameter_memories() if role == "thresholds"]
    rams = [(banks * vp * sf, mvu.SIMD * mvu.input_dtype.bitwidth()), (2 * sf, word_bits),
            (banks * vp * nf, mvu.PE * mvu.output_dtype.bitwidth())]
    buffers = [*rams, *thresholds]
    image_bytes = bus_words * data_bits // 8
    per_bus = data_bits // slot_bits_of(word_bits, data_bits)
    # several words to a bus word: a mux picks each (a LUT6 a bit selects among four), two counters
    unpack = word_bits * -(-per_bus // 4) + 2 * (nf * sf).bit_length() if per_bus > 1 else 0
    luts = (mvu.est_luts() - mvu.weight_rom_luts() + sum(memory_luts(d, w) for d, w in thresholds)
            + sum(max(memory_luts(d, w), bram_read_mux_luts(d, w)) for d, w in rams)
            + reader_luts(bus_words, data_bits) + unpack + 40)
    return DramPlan(cycles, luts, sum(memory_bram18(d, w) for d, w in buffers), mvu.est_dsps(),
                    passes * image_bytes)


class DramMVUComponent(wiring.Component):
    def __init__(self, unit: DramMVU) -> None:
        self.unit = unit
        ports = stream_ports(unit.inputs[0].width, unit.outputs[0].width)
        super().__init__({**ports, **axi_read_members(unit.data_bits)})

    def elaborate(self, platform: object) -> Module:
        u, mvu = self.unit, self.unit._mvu
        m = Module()
        NF, SF, PE = u.NF, u.SF, u.PE
        VP = u.vectors_per_frame // u.passes  # vectors a pass
        IN, OUT = VP * SF, VP * NF  # words of a buffer's bank
        B = u.banks
        obits = u.output_dtype.bitwidth()

        def other(bank: Signal) -> Value:
            """The bank after `bank` (the same one where there is one)."""
            return ~bank if B == 2 else bank

        def base(bank: Signal, words: int) -> Value:
            """The first word of `bank` in a buffer of banks of `words` words."""
            return Mux(bank, words, 0) if B == 2 else Const(0)

        def bank_ends(addr: Signal, words: int) -> Value:
            """Whether `addr` is the last word of a bank."""
            return (addr == words - 1) | (addr == 2 * words - 1) if B == 2 else addr == words - 1

        # ---- the input: banks of a pass each, filled in turn
        width_in = u.inputs[0].width
        m.submodules.xbuf = xbuf = Memory(shape=unsigned(width_in), depth=B * IN, init=[],
                                          attrs=memory_attrs(B * IN, width_in, rom=False))
        xw, xr = xbuf.write_port(), xbuf.read_port(domain="sync")
        waddr, wbank, in_full = Signal(range(B * IN)), Signal(), Signal(2)
        can_take = ~in_full.bit_select(wbank, 1)
        take = self.inp.valid & can_take
        m.d.comb += [self.inp.ready.eq(can_take), xw.addr.eq(waddr), xw.data.eq(self.inp.payload), xw.en.eq(take)]
        with m.If(take):
            m.d.sync += waddr.eq(wrap_inc(waddr, B * IN))
            with m.If(bank_ends(waddr, IN)):
                m.d.sync += [in_full.bit_select(wbank, 1).eq(1), wbank.eq(other(wbank))]

        tr, tile_full, _ = load_weight_tiles(m, self, u)

        # ---- compute: pass by pass (an input bank into an output bank), tile by tile, vector by
        # vector, fold by fold; the buffers' addresses count within both banks
        running, cin, cout = Signal(), Signal(), Signal()
        out_claimed, out_ready = Signal(2), Signal(2)  # an output bank taken by a pass; written whole
        nf, v, sf = Signal(range(NF)), Signal(range(VP)), Signal(range(SF))
        xaddr, cbank = Signal(range(B * IN)), Signal()
        oaddr, obase = Signal(range(B * OUT)), Signal(range(B * OUT))  # the result's place: bank + v * NF + nf
        fire = Signal()
        m.d.comb += fire.eq(running & tile_full.bit_select(cbank, 1))
        m.d.comb += [xr.addr.eq(xaddr), xr.en.eq(1), tr.addr.eq(Mux(cbank, sf + SF, sf)), tr.en.eq(1)]
        last_sf, last_v, last_nf = sf == SF - 1, v == VP - 1, nf == NF - 1
        tile_done = fire & last_sf & last_v
        pass_done = tile_done & last_nf
        with m.If(~running & in_full.bit_select(cin, 1) & ~out_claimed.bit_select(cout, 1)):
            m.d.sync += [running.eq(1), out_claimed.bit_select(cout, 1).eq(1)]
        with m.If(fire):
            m.d.sync += [sf.eq(wrap_inc(sf, SF)), xaddr.eq(xaddr + 1)]
            with m.If(last_sf):
                m.d.sync += [v.eq(wrap_inc(v, VP)), oaddr.eq(oaddr + NF)]
                with m.If(last_v):  # the tile's vectors again, the next tile's outputs
                    m.d.sync += [nf.eq(wrap_inc(nf, NF)), cbank.eq(~cbank), xaddr.eq(base(cin, IN)),
                                 obase.eq(obase + 1), oaddr.eq(obase + 1)]
        with m.If(pass_done):  # the other banks for the next pass
            m.d.sync += [running.eq(0), in_full.bit_select(cin, 1).eq(0), cin.eq(other(cin)), cout.eq(other(cout)),
                         xaddr.eq(base(other(cin), IN)), obase.eq(base(other(cout), OUT)),
                         oaddr.eq(base(other(cout), OUT))]
        with m.If(tile_done):  # a tile is loaded only while its bank is empty, computed only while full
            m.d.sync += tile_full.bit_select(cbank, 1).eq(0)

        lanes, write3, (oaddr3, final3, bank3), _ = tile_results(m, u, mvu, xr.data, tr.data, fire, sf == 0,
                                                                 last_sf, nf, [oaddr, pass_done, cout])
        final3 = write3 & final3
        # S3: the vector's PE results into the output bank
        m.submodules.obuf = obuf = Memory(shape=unsigned(PE * obits), depth=B * OUT, init=[],
                                          attrs=memory_attrs(B * OUT, PE * obits, rom=False))
        ow, orp = obuf.write_port(), obuf.read_port(domain="sync")
        m.d.comb += [ow.addr.eq(oaddr3), ow.data.eq(lanes), ow.en.eq(write3)]
        with m.If(final3):
            m.d.sync += out_ready.bit_select(bank3, 1).eq(1)

        # ---- send the output banks in turn: reads run ahead into a small FIFO, as far as it has room
        sbank = Signal()
        m.submodules.out_fifo = fifo = SyncFIFOBuffered(width=PE * obits, depth=OUT_FIFO)
        raddr, credits, pending = Signal(range(B * OUT)), Signal(range(OUT_FIFO + 1), init=OUT_FIFO), Signal()
        issue = out_ready.bit_select(sbank, 1) & (credits != 0)
        sent = self.out.valid & self.out.ready
        m.d.comb += [orp.addr.eq(raddr), orp.en.eq(issue), fifo.w_data.eq(orp.data), fifo.w_en.eq(pending),
                     self.out.payload.eq(fifo.r_data), self.out.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.out.ready)]
        m.d.sync += [pending.eq(issue), credits.eq(credits - issue + sent)]
        with m.If(issue):
            m.d.sync += raddr.eq(wrap_inc(raddr, B * OUT))
            with m.If(bank_ends(raddr, OUT)):  # the bank sent: free for a pass
                m.d.sync += [out_ready.bit_select(sbank, 1).eq(0), out_claimed.bit_select(sbank, 1).eq(0),
                             sbank.eq(other(sbank))]
        return m


def load_weight_tiles(m: Module, ports: wiring.Component, u: Unit) -> tuple[ReadPort, Signal, Value]:
    """The weight side of a weight-stationary unit (a DramMVU, a FrameMVU): `u.reader` on the
    component's AXI ports, its bus words gathered into weight words (or a bus word's several words
    taken in turn) into two tiles of SF words, tile after tile. Returns the tiles' read port (the compute sets its
    address: tile bank x SF + fold), which of the two tiles are loaded (`tile_full`: the compute
    clears a bit when it is done with that tile), and the cycle a tile's last word is written."""
    m.submodules.reader = reader = DramReaderComponent(u.reader)
    for name in dram_member_names(reader):
        inside, outside = getattr(reader, name), getattr(ports, name)
        m.d.comb += connect(inside, outside, reader.signature.members[name].flow)
    m.d.comb += [reader.inp.valid.eq(1), reader.inp.payload.eq(1)]  # image after image
    SF, NF = u.SF, u.NF
    slot, data = u.slot_bits, u.data_bits
    m.submodules.tiles = tiles = Memory(shape=unsigned(u.word_bits), depth=2 * SF, init=[],
                                        attrs=memory_attrs(2 * SF, u.word_bits, rom=False))
    tw, tr = tiles.write_port(), tiles.read_port(domain="sync")
    tile_full, lbank, lsf = Signal(2), Signal(), Signal(range(SF))
    loading = ~tile_full.bit_select(lbank, 1)
    got = reader.out.valid & loading
    if slot < data:  # per_bus words a bus word; the image's last word ends its bus word
        per_bus = data // slot
        part, pword = Signal(range(per_bus)), Signal(range(NF * SF))
        bus_word_done = (part == per_bus - 1) | (pword == NF * SF - 1)
        m.d.comb += reader.out.ready.eq(loading & bus_word_done)
        with m.If(got):
            m.d.sync += [part.eq(Mux(bus_word_done, 0, part + 1)), pword.eq(wrap_inc(pword, NF * SF))]
        word, word_done = reader.out.payload.word_select(part, slot)[:u.word_bits], got
    elif slot == data:
        m.d.comb += reader.out.ready.eq(loading)
        word, word_done = reader.out.payload[:u.word_bits], got
    else:
        ratio = slot // data
        m.d.comb += reader.out.ready.eq(loading)
        gathered, part = Signal((ratio - 1) * data), Signal(range(ratio))
        with m.If(got):
            m.d.sync += [gathered.eq(Cat(gathered[data:], reader.out.payload)), part.eq(wrap_inc(part, ratio))]
        word, word_done = Cat(gathered, reader.out.payload)[:u.word_bits], got & (part == ratio - 1)
    m.d.comb += [tw.addr.eq(Mux(lbank, lsf + SF, lsf)), tw.data.eq(word), tw.en.eq(word_done)]
    tile_loaded = word_done & (lsf == SF - 1)
    with m.If(word_done):
        m.d.sync += lsf.eq(wrap_inc(lsf, SF))
    with m.If(tile_loaded):
        m.d.sync += [lbank.eq(~lbank), tile_full.bit_select(lbank, 1).eq(1)]
    return tr, tile_full, tile_loaded


def tile_results(m: Module, u: Unit, mvu: MVU, x1: Value, w1: Value, fire: Value, first: Value,
                 last: Value, nf: Value, carried: list[Value]) -> tuple[Value, Value, list[Value], int]:
    """The arithmetic of a weight-stationary unit (a DramMVU, a FrameMVU), a step per cycle: S1
    the input word `x1` and the weight word `w1` (read in the cycle after `fire`), the on-chip
    MVU's dot products (`lane_dots`), S2 the accumulators (from zero on `first`), S3 the PE
    results of a vector (after its `last` step; thresholded by tile `nf`'s thresholds, read
    while the accumulators settle). Returns the results as one word, the cycle they are valid,
    the `carried` values of the vector's last step, delayed to that cycle, and the cycles from a
    step to its results."""
    def register(value: Value) -> Value:
        held = Signal(value.shape())
        m.d.sync += held.eq(value)
        return held

    control = [register(c) for c in (fire, first, last, nf, *carried)]
    dots, depth = lane_dots(m, mvu, x1, w1, register)
    for _ in range(depth):
        control = [register(c) for c in control]
    dots = [register(d) for d in dots]
    valid2, first2, last2, nf2, *carried2 = (register(c) for c in control)
    hw = mvu._hw
    accs = [Signal(hw.acc_shape, name=f"acc{pe}") for pe in range(u.PE)]
    with m.If(valid2):
        m.d.sync += [acc.eq(Mux(first2, 0, acc) + dot) for acc, dot in zip(accs, dots)]
    write3, carried3 = register(valid2 & last2), [register(c) for c in carried2]
    lanes = [Signal(u.output_dtype.bitwidth(), name=f"lane{pe}") for pe in range(u.PE)]  # the type holds the range
    if hw.thresholds is not None:
        steps = hw.thresholds.shape[1]
        m.submodules.thresholds = trom = Memory(
            shape=unsigned(u.PE * steps * hw.acc_bits), depth=u.NF,
            init=threshold_words(hw.thresholds, u.PE, hw.acc_bits),
            attrs=memory_attrs(u.NF, u.PE * steps * hw.acc_bits, rom=True))
        trd = trom.read_port(domain="sync")
        m.d.comb += [trd.addr.eq(nf2), trd.en.eq(1)]
        for pe, (lane, acc) in enumerate(zip(lanes, accs)):
            word = trd.data[pe * steps * hw.acc_bits:(pe + 1) * steps * hw.acc_bits]
            m.d.comb += lane.eq(threshold_lane(acc, word, steps, hw.acc_bits, hw.acc_signed, u.output_dtype,
                                               u.out_bias))
    else:
        m.d.comb += [lane.eq(((acc << 1) - u.MW) if hw.bipolar_popcount else acc) for lane, acc in zip(lanes, accs)]
    return Cat(*lanes), write3, carried3, depth + 3

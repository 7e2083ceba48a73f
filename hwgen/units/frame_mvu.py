"""FrameMVU: a convolution whose weights stream from DRAM once a frame, over the whole image held on
chip, its windows made inside, its output tile by tile.

    image (H x W x C, SIMD channels a beat)  ->  two banks of the whole image  --+
                                                                                 +-> for each tile nf of PE outputs:
    DRAM --AXI4--> DramReader -> tiles (PE x MW weights, SF words)  -------------+     for each output pixel p:
                                                                                          for each fold sf = (ky, kx, cf):
                                                                                            acc += W[nf, sf] . x[window(p), sf]
                                                                                  -> out: (nf, p), PE lanes a beat

`DramMVU` holds im2col windows (a 3x3 window is nine pixels) and the accumulators of the vectors
of a pass; both grow with the pass, so on a small part a pass is a few vectors and a frame reads
every weight tens of times (ReActNet-A on the xc7z020: 56). This unit holds the image instead, once
(a binary 14 x 14 x 512 map is 100 Kbit, against 903 Kbit of its 3x3 windows), walks the windows
over it by address (`window_steps`: no multiplier; positions in the padding read `pad_value`), and
keeps no accumulators beyond a vector's PE: it computes one tile of weights (PE output channels)
for every output pixel before the next tile. Each weight is read from DRAM once a frame, so the
DRAM carries the weights times the frame rate and nothing more.

The price is the order of the output: tile by tile (channel-major: beat (nf, p) holds channels
nf x PE .. nf x PE + PE - 1 of pixel p), not pixel by pixel. The unit takes its input in either
order, or in any number of channel groups (`input_groups`, `hwgen.streams` Order), so such units
chain without a reorder where the units between them take the same order at the same width.

Two banks of the image let the next frame arrive while one is computed, and two weight tiles let
the next arrive (`load_weight_tiles`, shared with `DramMVU`) while one is computed: a frame takes
NF x P x SF steps and a cycle (or, slower, its input's beats or the bus's words). The arithmetic
is the on-chip MVU's (`tile_results`), the geometry the sliding window's (`SlidingWindow` checks
it and gives the reference windows), so both are the same as the units this one stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError

from hwgen.rtl.axi import axi_read_members
from hwgen.streams import from_channel_last, to_channel_last, to_wire
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import (
    bram_read_mux_luts, check_values, decode, grouped_offset, is_bipolar, memory_attrs, memory_bram18, memory_luts,
    ram_luts, wrap_inc,
)
from hwgen.units.dram_mvu import (
    OUT_FIFO, bus_words_per_pass, load_weight_tiles, slot_bits_of, tile_results, weight_reader, word_bits_of,
)
from hwgen.units.dram_reader import DramReader, reader_luts
from hwgen.units.mvu import MVU
from hwgen.units.sliding_window import SlidingWindow


@dataclass(frozen=True, eq=False)
class FrameMVU(Unit):
    """The convolution of a `SlidingWindow` (the geometry fields, `SIMD`, `input_dtype` to
    `window_dtype`, `pad_value`) and an `MVU` (`MH`, `PE`, `SIMD`, the weights of MW = kernel_h x
    kernel_w x channels rows in window order, the thresholds, `output_dtype`), its weights read
    from DRAM once a frame at `offset` bytes from the DRAM base over a `data_bits` bus."""

    #: not folded: it takes the folding of the units it replaces
    FOLDING = ()

    in_h: int
    in_w: int
    channels: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int
    MH: int
    PE: int
    SIMD: int
    input_dtype: BaseDataType
    window_dtype: BaseDataType
    weight_dtype: BaseDataType
    weights: np.ndarray
    thresholds: np.ndarray | None
    output_dtype: BaseDataType
    out_bias: int = 0
    pad_value: int = 0
    data_bits: int = 64
    offset: int = 0
    #: the input's order (`hwgen.streams`, Order): 1, channel-last; channels / SIMD, tile by tile
    #: (beat (t, p): channels t x SIMD .. of pixel p), as this unit's own output is
    input_groups: int = 1
    products_in_luts: bool = False
    packed_products: bool = False
    _window: SlidingWindow = field(init=False, repr=False)
    _mvu: MVU = field(init=False, repr=False)

    def __post_init__(self) -> None:
        window = SlidingWindow(self.in_h, self.in_w, self.channels, self.kernel_h, self.kernel_w, self.stride_h,
                               self.stride_w, self.pad_top, self.pad_left, self.pad_bottom, self.pad_right, self.SIMD,
                               self.input_dtype, self.window_dtype, self.pad_value)
        mw = self.kernel_h * self.kernel_w * self.channels
        mvu = MVU(mw, self.MH, self.PE, self.SIMD, self.window_dtype, self.weight_dtype, self.weights,
                  self.thresholds, self.output_dtype, self.out_bias, vectors_per_frame=window.out_h * window.out_w,
                  products_in_luts=self.products_in_luts, packed_products=self.packed_products)
        object.__setattr__(self, "_window", window)
        object.__setattr__(self, "_mvu", mvu)
        object.__setattr__(self, "weights", mvu.weights)
        object.__setattr__(self, "thresholds", mvu.thresholds)
        _ = self.reader  # checks data_bits and offset
        if not takes_groups(self.channels, self.SIMD, self.input_groups):
            raise HwgenError(f"input_groups={self.input_groups!r} must divide channels={self.channels} into groups "
                             f"of a multiple of SIMD={self.SIMD} channels, or of SIMD over a power of two",
                             where="FrameMVU")

    # -- shapes

    @property
    def MW(self) -> int:
        return self._mvu.MW

    @property
    def NF(self) -> int:
        return self._mvu.NF

    @property
    def SF(self) -> int:
        return self._mvu.SF

    @property
    def folds(self) -> int:
        """Beats of one input pixel (SIMD channels each)."""
        return self.channels // self.SIMD

    @property
    def out_h(self) -> int:
        return self._window.out_h

    @property
    def out_w(self) -> int:
        return self._window.out_w

    @property
    def pixels(self) -> int:
        """Output pixels: the vectors of the on-chip MVU."""
        return self.out_h * self.out_w

    @property
    def input_lanes(self) -> int:
        """Channels of an input beat: SIMD; or, where a group holds fewer, a group's channels
        (the beats of SIMD / lanes groups then share a word of the image, each its slot)."""
        per_group = self.channels // self.input_groups
        return self.SIMD if per_group % self.SIMD == 0 else per_group

    @property
    def output_groups(self) -> int:
        """The output's order (`hwgen.streams`, Order): a group a tile."""
        return self.NF

    @property
    def word_bits(self) -> int:
        return word_bits_of(self._mvu)

    @property
    def slot_bits(self) -> int:
        return slot_bits_of(self.word_bits, self.data_bits)

    @cached_property
    def reader(self) -> DramReader:
        """The weight words tile by tile, as `DramMVU` reads them (`weight_reader`)."""
        return weight_reader(self._mvu, self.data_bits, self.offset)

    def dram_image(self) -> np.ndarray:
        return self.reader.image

    def dram_image_bytes(self) -> int:
        return self.reader.dram_bytes_per_frame()

    def dram_bytes_per_frame(self) -> int:
        """The image once: every weight is read once a frame."""
        return self.dram_image_bytes()

    # -- interface

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        lanes = self.input_lanes
        return (StreamSpec(self.input_dtype, lanes, self.in_h * self.in_w * self.channels // lanes),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.output_dtype, self.PE, self.NF * self.pixels),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        """The sliding window's and the MVU's references; the output tile by tile."""
        (x,) = frames
        x = check_values(x, self.input_dtype, "FrameMVU input")
        n = x.shape[0]
        x = to_channel_last(x, self.in_h * self.in_w, self.channels, self.input_groups).reshape(n, -1)
        out = self._mvu.reference(self._window.reference(x))
        return from_channel_last(out.reshape(n, self.pixels, self.MH), self.output_groups)

    def component(self) -> wiring.Component:
        return FrameMVUComponent(self)

    # -- estimates

    def held_fraction(self) -> float:
        """The frame being computed and the next, whole, in the other bank."""
        return 2.0

    def least_held_fraction(self) -> float:
        """The whole frame before the first output."""
        return 1.0

    def est_cycles(self) -> int:
        """The slowest of the three sides, which run at once: the compute (NF x P x SF steps and
        a cycle to start the frame), the input (its beats) and the bus (the image's words)."""
        bus = bus_words_per_pass(self.NF * self.SF, self.word_bits, self.data_bits)
        return max(self.NF * self.pixels * self.SF + 1, self.inputs[0].beats_per_frame, bus)

    def _rams(self) -> list[tuple[int, int]]:
        """(depth, width) of the image's two banks and the two weight tiles."""
        return [(2 * self.in_h * self.in_w * self.folds, self.SIMD * self.window_dtype.bitwidth()),
                (2 * self.SF, self.word_bits)]

    def _thresholds(self) -> list[tuple[int, int]]:
        return [(d, w) for d, w, role in self._mvu.parameter_memories() if role == "thresholds"]

    def parameter_memories(self) -> list[tuple[int, int, str]]:
        """The thresholds only: the weights are in DRAM."""
        return [(d, w, "thresholds") for d, w in self._thresholds()]

    def window_bits(self) -> int:
        """Bits of the signed counters that walk the windows (`window_steps`)."""
        return window_bits(self)

    def est_luts(self) -> int:
        """The on-chip MVU's dot products and accumulators (its estimate without its weight ROM),
        the buffers' read muxes, the thresholds, the reader, the output FIFO (LUT RAM), the
        window walk (six signed counters and four comparisons of `window_bits`, and the loop
        counters) and the input's write address."""
        mvu, bits = self._mvu, self.window_bits()
        bus = bus_words_per_pass(self.NF * self.SF, self.word_bits, self.data_bits)
        per_bus = self.data_bits // self.slot_bits
        unpack = self.word_bits * -(-per_bus // 4) + 2 * (self.NF * self.SF).bit_length() if per_bus > 1 else 0
        loops = sum(max(1, (n - 1).bit_length()) for n in (self.NF, self.out_h, self.out_w, self.kernel_h,
                                                               self.kernel_w, self.folds))
        return (mvu.est_luts() - mvu.weight_rom_luts() + sum(memory_luts(d, w) for d, w in self._thresholds())
                + sum(max(memory_luts(d, w), bram_read_mux_luts(d, w)) for d, w in self._rams())
                + reader_luts(bus, self.data_bits) + unpack
                + ram_luts(OUT_FIFO + 8, self.PE * self.output_dtype.bitwidth())
                + 8 * bits + loops + 2 * max(1, (2 * self.in_h * self.in_w * self.folds).bit_length()) + 40)

    def est_brams(self) -> int:
        return sum(memory_bram18(d, w) for d, w in (*self._rams(), *self._thresholds()))

    def est_dsps(self) -> int:
        return self._mvu.est_dsps()


def takes_groups(channels: int, simd: int, groups: int) -> bool:
    """Whether a FrameMVU of `channels` input channels and `simd` takes its input in `groups`
    channel groups: groups of a multiple of SIMD channels, or of SIMD over a power of two (their
    beats share the image's words)."""
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1 or channels % groups:
        return False
    per_group = channels // groups
    slots = simd // per_group
    return per_group % simd == 0 or (simd % per_group == 0 and slots & (slots - 1) == 0)


def window_bits(u: FrameMVU) -> int:
    """Bits of the signed counters of `window_steps`: an address of the image less the top and
    left padding, up to a window's reach past its end."""
    reach = (u.in_h + u.kernel_h) * u.in_w * u.folds + u.kernel_w * u.folds
    top_left = (u.pad_top * u.in_w + u.pad_left) * u.folds
    return max(reach, top_left, u.in_h + u.kernel_h, u.in_w + u.kernel_w).bit_length() + 1


class FrameMVUComponent(wiring.Component):
    def __init__(self, unit: FrameMVU) -> None:
        self.unit = unit
        ports = stream_ports(unit.inputs[0].width, unit.outputs[0].width)
        super().__init__({**ports, **axi_read_members(unit.data_bits)})

    def elaborate(self, platform: object) -> Module:
        u, mvu = self.unit, self.unit._mvu
        m = Module()
        NF, SF, CF = u.NF, u.SF, u.folds
        P_in = u.in_h * u.in_w  # pixels of the image
        IN = P_in * CF  # words of a bank
        ibits, xbits, SIMD = u.input_dtype.bitwidth(), u.window_dtype.bitwidth(), u.SIMD

        # ---- the input: a bank per frame, its elements re-encoded to the windows' type
        m.submodules.xbuf = xbuf = Memory(shape=unsigned(SIMD * xbits), depth=2 * IN, init=[],
                                          attrs=memory_attrs(2 * IN, SIMD * xbits, rom=False))
        LANES = u.input_lanes
        slots = SIMD // LANES  # input beats a word of the image: a power of two
        xw = xbuf.write_port(granularity=LANES * xbits)
        xr = xbuf.read_port(domain="sync")
        lanes = []
        for i in range(LANES):
            lane, code = Signal(xbits, name=f"in{i}"), self.inp.payload[i * ibits:(i + 1) * ibits]
            m.d.comb += lane.eq(code if is_bipolar(u.window_dtype) else decode(code, u.input_dtype))
            lanes.append(lane)
        wbank, in_full = Signal(), Signal(2)
        can_take = ~in_full.bit_select(wbank, 1)
        take = self.inp.valid & can_take
        # the beat's place in slots of LANES channels, channel-last: word offset // slots, slot offset % slots
        woff, bank_done = grouped_offset(m, take, P_in, u.channels // LANES, u.input_groups, name="woff")
        shift = slots.bit_length() - 1
        m.d.comb += [self.inp.ready.eq(can_take), xw.addr.eq(Mux(wbank, IN, 0) + (woff >> shift)),
                     xw.data.eq(Cat(*lanes).replicate(slots)),
                     xw.en.eq(Mux(take, (Const(1, slots) << woff[:shift])[:slots] if shift else 1, 0))]
        with m.If(take & bank_done):
            m.d.sync += [in_full.bit_select(wbank, 1).eq(1), wbank.eq(~wbank)]

        tr, tile_full, _ = load_weight_tiles(m, self, u)

        # ---- compute: frame by frame, tile by tile, pixel by pixel, fold by fold over the window
        running, cin, cbank, fire = Signal(), Signal(), Signal(), Signal()
        nf = Signal(range(NF))
        walk = window_steps(m, u, fire)
        last_p = walk.last_pixel
        tile_done = fire & walk.last_fold & last_p
        frame_done = tile_done & (nf == NF - 1)
        with m.If(~running & in_full.bit_select(cin, 1)):
            m.d.sync += running.eq(1)
        with m.If(tile_done):
            m.d.sync += [nf.eq(wrap_inc(nf, NF)), cbank.eq(~cbank), tile_full.bit_select(cbank, 1).eq(0)]
        with m.If(frame_done):
            m.d.sync += [running.eq(0), in_full.bit_select(cin, 1).eq(0), cin.eq(~cin)]
        m.d.comb += [xr.addr.eq(Mux(cin, IN, 0) + walk.address[:max(1, (2 * IN - 1).bit_length())]), xr.en.eq(1),
                     tr.addr.eq(Mux(cbank, walk.fold + SF, walk.fold)), tr.en.eq(1)]

        # S1: the image's word, or the padding's
        pad_code = int(to_wire(np.array([u.pad_value]), u.window_dtype)[0])
        pad_word = Const(sum(pad_code << (i * xbits) for i in range(SIMD)), SIMD * xbits)
        pad1 = Signal()
        m.d.sync += pad1.eq(walk.in_padding)
        results, write3, _, latency = tile_results(m, u, mvu, Mux(pad1, pad_word, xr.data), tr.data, fire,
                                                   walk.fold == 0, walk.last_fold, nf, [])

        # ---- out: a vector's results into a FIFO that the compute never overfills (a credit a vector)
        depth = latency + OUT_FIFO
        m.submodules.out_fifo = fifo = SyncFIFOBuffered(width=u.outputs[0].width, depth=depth)
        owed = Signal(range(depth + 1))  # results in flight or in the FIFO
        sent = self.out.valid & self.out.ready
        m.d.comb += [fire.eq(running & tile_full.bit_select(cbank, 1) & (~walk.last_fold | (owed != depth))),
                     fifo.w_data.eq(results), fifo.w_en.eq(write3), self.out.payload.eq(fifo.r_data),
                     self.out.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.out.ready)]
        m.d.sync += owed.eq(owed + (fire & walk.last_fold) - sent)
        return m


@dataclass
class WindowWalk:
    """The signals of `window_steps`."""

    address: Signal  # the word of the image (within a bank) at the current fold, if not padding
    in_padding: Signal
    fold: Signal  # (ky, kx, cf) as one count: the weight word of the tile
    last_fold: Signal
    last_pixel: Signal


def window_steps(m: Module, u: FrameMVU, step: Signal) -> WindowWalk:
    """Counters that walk every output pixel's window over the image, a fold (SIMD channels of a
    kernel position) per `step`, in the on-chip MVU's order (ky, kx, cf): each level that wraps
    moves the image address by a constant (within a kernel row the words follow each other; the
    next kernel row is (W - KW) x CF + 1 on; the next window SW x CF from the last one's start;
    the next window row SH x W x CF from the last row's start), so there is no multiplier. The
    row and column of the current pixel of the image (iy, ix) say whether it lies in the padding."""
    CF, H, W = u.folds, u.in_h, u.in_w
    KH, KW, SH, SW = u.kernel_h, u.kernel_w, u.stride_h, u.stride_w
    bits = window_bits(u)
    start = -(u.pad_top * W + u.pad_left) * CF

    def counter(limit: int, name: str) -> Signal:
        return Signal(range(limit), name=name)

    cf, kx, ky, ox, oy = (counter(n, name) for n, name in ((CF, "cf"), (KW, "kx"), (KH, "ky"), (u.out_w, "ox"),
                                                           (u.out_h, "oy")))
    fold = counter(u.SF, "fold")
    iy, ix, iy0, ix0 = (Signal(signed(bits), init=init, name=name)
                        for name, init in (("iy", -u.pad_top), ("ix", -u.pad_left), ("iy0", -u.pad_top),
                                           ("ix0", -u.pad_left)))
    addr, wbase, rbase = (Signal(signed(bits), init=start, name=name) for name in ("addr", "wbase", "rbase"))
    last_cf, last_kx, last_ky = cf == CF - 1, kx == KW - 1, ky == KH - 1
    last_ox, last_oy = ox == u.out_w - 1, oy == u.out_h - 1
    with m.If(step):
        m.d.sync += fold.eq(wrap_inc(fold, u.SF))
        with m.If(~last_cf):
            m.d.sync += [cf.eq(cf + 1), addr.eq(addr + 1)]
        with m.Elif(~last_kx):
            m.d.sync += [cf.eq(0), kx.eq(kx + 1), ix.eq(ix + 1), addr.eq(addr + 1)]
        with m.Elif(~last_ky):
            m.d.sync += [cf.eq(0), kx.eq(0), ky.eq(ky + 1), iy.eq(iy + 1), ix.eq(ix0),
                         addr.eq(addr + (W - KW) * CF + 1)]
        with m.Elif(~last_ox):  # the next window of the row
            m.d.sync += [cf.eq(0), kx.eq(0), ky.eq(0), ox.eq(ox + 1), iy.eq(iy0), ix0.eq(ix0 + SW), ix.eq(ix0 + SW),
                         wbase.eq(wbase + SW * CF), addr.eq(wbase + SW * CF)]
        with m.Elif(~last_oy):  # the first window of the next row
            m.d.sync += [cf.eq(0), kx.eq(0), ky.eq(0), ox.eq(0), oy.eq(oy + 1), iy0.eq(iy0 + SH), iy.eq(iy0 + SH),
                         ix0.eq(-u.pad_left), ix.eq(-u.pad_left), rbase.eq(rbase + SH * W * CF),
                         wbase.eq(rbase + SH * W * CF), addr.eq(rbase + SH * W * CF)]
        with m.Else():  # the image again, for the next tile
            m.d.sync += [cf.eq(0), kx.eq(0), ky.eq(0), ox.eq(0), oy.eq(0), iy0.eq(-u.pad_top), iy.eq(-u.pad_top),
                         ix0.eq(-u.pad_left), ix.eq(-u.pad_left), rbase.eq(start), wbase.eq(start), addr.eq(start)]
    in_padding, last_fold, last_pixel = Signal(), Signal(), Signal()
    m.d.comb += [in_padding.eq((iy < 0) | (iy >= H) | (ix < 0) | (ix >= W)),
                 last_fold.eq(last_cf & last_kx & last_ky), last_pixel.eq(last_ox & last_oy)]
    return WindowWalk(addr, in_padding, fold, last_fold, last_pixel)

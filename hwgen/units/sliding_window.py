"""SlidingWindow: the convolution input generator (FINN's ConvolutionInputGenerator, im2col).

An image of `in_h` x `in_w` pixels of `channels` channels arrives channel-last in raster order
(h, w, c), `SIMD` channels per beat. For each output pixel (oh, ow) in raster order the unit sends
the window's `kernel_h` x `kernel_w` pixels in order (kh, kw, c), `SIMD` channels per beat: exactly
the input of a matrix-vector unit with MW = kernel_h*kernel_w*channels and one vector per output
pixel. With `MMV` > 1 one output beat carries `MMV` such `SIMD`-wide pieces of a window at once
(several channel folds of a pixel, several pixels of a kernel row, or several whole kernel rows),
so one window takes kernel_h*kernel_w*channels / (SIMD*MMV) clocks instead of one clock per
`SIMD` channels: a convolution of few channels (CNV's first layer, 3) would otherwise leave the
unit after it waiting for 9 clocks per output pixel whatever its folding. Window positions in the
padding send `pad_value`. Elements keep their value but are
re-encoded from `input_dtype` to `output_dtype`, so a BIPOLAR image can be padded with a real 0
(output INT2): a padded binary convolution then stays exact.

Buffering. The input beats go, in arrival order, into one circular buffer of `buffer_beats` beats
(an `amaranth.lib.memory.Memory` with a synchronous read port, so block RAM or LUTRAM). The writer
and the reader count absolute beat positions (modulo a power of two far above any distance that can
occur, so the differences are exact):

- the reader walks the output order (oh, ow, kh, kw, c-fold) with incremental counters, a group
  of `MMV` pieces at a time; the buffer position of a group's first piece moves by one of six
  constant steps (one per loop level that wraps), so no multiplier is needed, and the other
  pieces lie at constant distances from it (within a kernel row the pieces are consecutive beats
  of the buffer, kernel rows are `in_w*channels/SIMD` beats apart), each read through a read port
  of its own; it issues a group once the writer has passed every piece of it that is not
  padding (a pad, once the writer has begun the element's frame);
- the writer accepts a beat while it stays less than `buffer_beats` ahead of `keep`, the first beat
  the reader may still need: the top-left pixel of the current window (the frame's start while the
  window still reaches into the top padding, since the next window row may need row 0 again).

`buffer_beats` lets the writer hold, while the reader works on one window, everything the next
window needs (`_window_bounds`). At a frame's end that includes the next frame's first window, so
the next frame's rows stream in while the last windows go out (the double buffering), and the
output never waits in steady state: one output beat per clock when output-bound, one input beat per
clock when input-bound. The rule is sufficient, not minimal: it ignores that the writer also fills
while the reader is still on a window (e.g. 3x3 on 6x6x4, 2 beats per pixel, no padding: 60 beats,
where 43 would keep the same rate; with padding the margin is a beat or two).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from numpy.lib.stride_tricks import sliding_window_view
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.streams import to_wire
from hwgen.units.base import StreamSpec, Unit, divisors, stream_ports
from hwgen.units.datapath import (
    check_dtype,
    check_positive,
    check_values,
    decode,
    is_bipolar,
    memory_attrs,
    in_bram,
    memory_bram18,
    ram_luts,
    wrap_inc,
)

_WHERE = "SlidingWindow"


def sliding_window(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pads: tuple[int, int, int, int],
    pad_value: int,
) -> np.ndarray:
    """Reference im2col: images (N, H, W, C) -> windows (N, out_h, out_w, kernel_h, kernel_w, C).

    `pads` is (top, left, bottom, right), ONNX order; padded positions hold `pad_value`.
    """
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value)
    win = sliding_window_view(xp, kernel, axis=(1, 2))[:, :: stride[0], :: stride[1]]
    return win.transpose(0, 1, 2, 4, 5, 3)  # (N, oh, ow, C, kh, kw) -> (N, oh, ow, kh, kw, C)


@dataclass(frozen=True)
class SlidingWindow(Unit):
    """Convolution windows of an `in_h` x `in_w` x `channels` image, `SIMD` channels per beat."""

    FOLDING = (("SIMD", "channels"), ("MMV", "window_beats"))

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
    SIMD: int
    input_dtype: BaseDataType
    output_dtype: BaseDataType
    pad_value: int = 0
    MMV: int = 1

    def __post_init__(self) -> None:
        check_positive(
            self, ("in_h", "in_w", "channels", "kernel_h", "kernel_w", "stride_h", "stride_w", "SIMD"), _WHERE
        )
        pads = (("pad_top", "kernel_h"), ("pad_bottom", "kernel_h"), ("pad_left", "kernel_w"), ("pad_right", "kernel_w"))
        for pad, kernel in pads:
            value = getattr(self, pad)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise HwgenError(f"{pad} must be a non-negative integer, not {value!r}", where=_WHERE)
            # A window lying wholly in the padding is never useful, and ruling it out keeps every
            # window's first real pixel inside the frame (see `keep` in the gateware).
            if value >= getattr(self, kernel):
                raise HwgenError(f"{pad}={value} must be smaller than {kernel}={getattr(self, kernel)}", where=_WHERE)
        if self.channels % self.SIMD:
            raise HwgenError(f"SIMD={self.SIMD} does not divide channels={self.channels}", where=_WHERE)
        check_positive(self, ("MMV",), _WHERE)
        if self.MMV not in self.mmv_choices():
            raise HwgenError(
                f"MMV={self.MMV} must divide the channel folds ({self.folds}), or be the folds times a "
                f"divisor of kernel_w={self.kernel_w}, or a whole kernel row ({self.folds * self.kernel_w}) "
                f"times a divisor of kernel_h={self.kernel_h}", where=_WHERE)
        if self.in_h + self.pad_top + self.pad_bottom < self.kernel_h:
            raise HwgenError(f"kernel_h={self.kernel_h} exceeds the padded height", where=_WHERE)
        if self.in_w + self.pad_left + self.pad_right < self.kernel_w:
            raise HwgenError(f"kernel_w={self.kernel_w} exceeds the padded width", where=_WHERE)
        idt = check_dtype(self.input_dtype, "input_dtype", _WHERE)
        odt = check_dtype(self.output_dtype, "output_dtype", _WHERE)
        if is_bipolar(odt) and not is_bipolar(idt):
            raise HwgenError(f"output_dtype BIPOLAR cannot hold the {idt.name} input values", where=_WHERE)
        if not is_bipolar(odt) and (idt.min() < odt.min() or idt.max() > odt.max()):
            raise HwgenError(
                f"output_dtype {odt.name} cannot hold every input_dtype {idt.name} value", where=_WHERE
            )
        pad = self.pad_value
        if (
            not isinstance(pad, (int, np.integer)) or isinstance(pad, bool)
            or not odt.min() <= pad <= odt.max() or (is_bipolar(odt) and pad == 0)
        ):
            raise HwgenError(f"pad_value {pad!r} is not a value of output_dtype {odt.name}", where=_WHERE)

    def held_fraction(self) -> float:
        """Its buffer, full."""
        return min(1.0, (self.buffer_beats + 1) / self.inputs[0].beats_per_frame)

    def least_held_fraction(self) -> float:
        """Every beat of the first window that is not padding."""
        _, last = self._window_bounds()
        return (int(last[0]) + 1) / self.inputs[0].beats_per_frame

    # -- shapes

    @property
    def out_h(self) -> int:
        return (self.in_h + self.pad_top + self.pad_bottom - self.kernel_h) // self.stride_h + 1

    @property
    def out_w(self) -> int:
        return (self.in_w + self.pad_left + self.pad_right - self.kernel_w) // self.stride_w + 1

    @property
    def folds(self) -> int:
        """Beats per pixel: channels / SIMD."""
        return self.channels // self.SIMD

    @property
    def window_beats(self) -> int:
        """`SIMD`-wide pieces of one window: kernel_h * kernel_w * channels / SIMD."""
        return self.kernel_h * self.kernel_w * self.folds

    def mmv_choices(self) -> list[int]:
        """The pieces one output beat may carry: a divisor of the channel folds (pieces of one
        pixel), the folds times a divisor of kernel_w (pixels of one kernel row), or a whole row
        times a divisor of kernel_h (kernel rows): groups whose pieces lie at fixed distances in
        the buffer."""
        folds, row = self.folds, self.folds * self.kernel_w
        return sorted({d for d in range(1, folds + 1) if folds % d == 0}
                      | {folds * d for d in range(1, self.kernel_w + 1) if self.kernel_w % d == 0}
                      | {row * r for r in range(1, self.kernel_h + 1) if self.kernel_h % r == 0})

    def folding_space(self) -> list[dict[str, int]]:
        return [{"SIMD": s, "MMV": p} for s in divisors(self.channels)
                for p in dataclasses.replace(self, SIMD=s, MMV=1).mmv_choices()]

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.input_dtype, self.SIMD, self.in_h * self.in_w * self.folds),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        beats = self.out_h * self.out_w * self.window_beats // self.MMV
        return (StreamSpec(self.output_dtype, self.SIMD * self.MMV, beats),)

    def piece_offsets(self) -> list[tuple[int, int, int]]:
        """Per piece of a group: (kernel rows, kernel columns, buffer beats) from the group's first
        piece. Groups start at a channel fold that is a multiple of `MMV` (within a pixel) or at
        fold 0 (several pixels or rows), so these are the same for every group."""
        row = self.folds * self.kernel_w
        return [(j // row, (j % row) // self.folds, (j // row) * self.in_w * self.folds + j % row)
                for j in range(self.MMV)]

    def loop_steps(self) -> tuple[int, int, int]:
        """How far a group moves the channel fold, kernel column and kernel row counters."""
        folds, row = self.folds, self.folds * self.kernel_w
        if self.MMV <= folds:
            return self.MMV, 1, 1
        if self.MMV <= row:
            return folds, self.MMV // folds, 1
        return folds, self.kernel_w, self.MMV // row

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        x = check_values(x, self.input_dtype, "SlidingWindow input")
        n = x.shape[0]
        win = sliding_window(
            x.reshape(n, self.in_h, self.in_w, self.channels),
            (self.kernel_h, self.kernel_w),
            (self.stride_h, self.stride_w),
            (self.pad_top, self.pad_left, self.pad_bottom, self.pad_right),
            self.pad_value,
        )
        return win.reshape(n, -1)

    def component(self) -> wiring.Component:
        return SlidingWindowComponent(self)

    # -- buffer sizing

    def _window_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per window, in output order: `keep` (first buffer beat of the frame it may still need,
        as the gateware computes it) and its last real beat."""
        cf = self.folds
        h0 = np.arange(self.out_h) * self.stride_h - self.pad_top
        w0 = np.arange(self.out_w) * self.stride_w - self.pad_left
        h0, w0 = (a.ravel() for a in np.meshgrid(h0, w0, indexing="ij"))
        keep = np.where(h0 >= 0, h0 * self.in_w + np.maximum(w0, 0), 0) * cf
        h1 = np.minimum(h0 + self.kernel_h - 1, self.in_h - 1)
        w1 = np.minimum(w0 + self.kernel_w - 1, self.in_w - 1)
        last = (h1 * self.in_w + w1) * cf + cf - 1
        return keep, last

    @property
    def buffer_beats(self) -> int:
        """Buffer depth in beats: while the reader is on window j (so keeps beats from keep[j]),
        the writer can already hold the last beat of window j+1 (of the next frame's first
        window after the frame's last)."""
        keep, last = self._window_bounds()
        nxt = np.append(last[1:], last[0] + self.inputs[0].beats_per_frame)
        return int(np.max(nxt - keep + 1))

    # -- estimates

    def est_cycles(self) -> int:
        return max(self.inputs[0].beats_per_frame, self.outputs[0].beats_per_frame)

    def est_luts(self) -> int:
        """The buffer if not in block RAM (`ram_luts`, a copy per read port, one port per piece of
        a beat), the output register's pad mux (~1 LUT per output bit, where there is padding),
        and the address logic, ~1 LUT per bit of each adder and comparator: the position counters
        with `keep` and the three distance comparators (6 per position bit), the two buffer
        addresses with the read side's modulo-depth step (4 per address bit), and the loop
        counters with their last-value compares and the pad compares (3 per counter bit); per
        further piece, its address (2 per address bit; the pieces lie at constant distances, so
        their written-yet compares reduce to the group's: Yosys, CNV's second window generator
        with nine pieces, 273 LUTs, where a compare per piece would make 368). Checked against
        Yosys `synth_xilinx` on CNV-W1A1's window generators (`tests/test_estimates.py`)."""
        width = self.SIMD * self.input_dtype.bitwidth()
        depth = self.buffer_beats
        pos_bits = _position_bits(self)
        addr_bits = max(1, (depth - 1).bit_length())
        counts = (self.folds, self.kernel_w, self.kernel_h, self.out_w, self.out_h)
        loops = sum((n - 1).bit_length() for n in counts)
        padded = self.pad_top + self.pad_left + self.pad_bottom + self.pad_right > 0
        buffer = 0 if in_bram(depth, width) else ram_luts(depth, width)
        # one window per frame (the classifier's 3x3 on a 3x3 map): `keep` stays at the frame's
        # start, and the distance compares fold away
        sliding = 6 * pos_bits if self.out_h * self.out_w > 1 else 0
        return (
            self.MMV * buffer
            + (self.MMV * self.SIMD * self.output_dtype.bitwidth() if padded else 0)
            + sliding + 4 * addr_bits + 3 * loops + 4
            + (self.MMV - 1) * 2 * addr_bits
        )

    def est_brams(self) -> int:
        """The buffer in block RAM, a copy per read port."""
        return self.MMV * memory_bram18(self.buffer_beats, self.SIMD * self.input_dtype.bitwidth())


def _position_bits(u: SlidingWindow) -> int:
    """Width of the absolute position counters: differences of positions stay below
    2*(beats per frame + buffer), so this many bits make every wrapped difference exact."""
    return (2 * (u.inputs[0].beats_per_frame + u.buffer_beats)).bit_length() + 1


class SlidingWindowComponent(wiring.Component):
    """Gateware of `SlidingWindow`: a circular buffer between a writer and a window reader.

    Writer: `inp.ready` while `W - keep < depth` (W: beats written so far); `W`, `keep` are
    registers, so `inp.ready` has no combinational path from `out.ready`.
    Reader, two stages under `advance = ~out.valid | out.ready`: stage 1 issues the buffer reads
    (one read port per piece of a group, or notes the pieces in the padding) when every piece is
    available and steps the loop counters; stage 2 re-encodes the read beats (or takes the pad
    word) into the output register.
    """

    def __init__(self, unit: SlidingWindow) -> None:
        self.unit = unit
        super().__init__(stream_ports(unit.inputs[0].width, unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        cf_n, kh_n, kw_n = u.folds, u.kernel_h, u.kernel_w
        sh, sw, pt, pl = u.stride_h, u.stride_w, u.pad_top, u.pad_left
        in_w = u.in_w
        ib = u.inputs[0].beats_per_frame
        depth = u.buffer_beats
        nbits = _position_bits(u)
        mask = (1 << nbits) - 1
        h_last = sh * (u.out_h - 1) - pt
        w_last = sw * (u.out_w - 1) - pl
        s_cf, s_kw, s_kh = u.loop_steps()
        pieces = u.piece_offsets()

        def lin(h: int, w: int, c: int) -> int:
            """Buffer position of channel fold c of pixel (h, w), relative to the frame."""
            return (h * in_w + w) * cf_n + c

        # Position steps of a group's first piece, one per loop level that wraps (cf, kw, kh, ow,
        # oh, frame), from the first piece of the level's last group.
        last_group = (kh_n - s_kh, kw_n - s_kw, cf_n - s_cf)
        steps = [
            s_cf,
            lin(0, s_kw, 0) - lin(0, 0, cf_n - s_cf),
            lin(s_kh, 0, 0) - lin(0, kw_n - s_kw, cf_n - s_cf),
            lin(0, sw, 0) - lin(*last_group),
            lin(sh, -pl - w_last, 0) - lin(*last_group),
            ib + lin(-pt - h_last, -pl - w_last, 0) - lin(*last_group),
        ]

        ibits, obits = u.input_dtype.bitwidth(), u.output_dtype.bitwidth()
        width = u.SIMD * ibits
        m.submodules.buf = mem = Memory(
            shape=unsigned(width), depth=depth, init=[], attrs=memory_attrs(depth, width, rom=False)
        )
        wr = mem.write_port()
        reads = [mem.read_port(domain="sync") for _ in pieces]

        # ---- writer
        wpos = Signal(nbits)
        waddr = Signal(range(depth))
        keep = Signal(nbits)
        m.d.comb += [
            self.inp.ready.eq((wpos - keep)[:nbits].as_signed() < depth),
            wr.addr.eq(waddr),
            wr.data.eq(self.inp.payload),
            wr.en.eq(self.inp.valid & self.inp.ready),
        ]
        with m.If(wr.en):
            m.d.sync += [wpos.eq(wpos + 1), waddr.eq(wrap_inc(waddr, depth))]

        # ---- reader state
        first = lin(-pt, -pl, 0)
        rpos = Signal(nbits, init=first & mask)  # absolute position of the group's first piece
        raddr = Signal(range(depth), init=first % depth)
        rbase = Signal(nbits)  # absolute position of the reader's frame
        hrow = Signal(nbits, init=lin(-pt, 0, 0) & mask)  # rbase + lin(h0, 0, 0)
        h0 = Signal(range(-pt, h_last + 1), init=-pt)  # window top-left pixel
        w0 = Signal(range(-pl, w_last + 1), init=-pl)
        wcf = Signal(range(-pl * cf_n, w_last * cf_n + 1), init=-pl * cf_n)  # w0 * folds
        # the group's first piece: channel fold, kernel column and row, stepping by s_cf, s_kw, s_kh
        cf = Signal(range(cf_n))
        kw = Signal(range(kw_n))
        kh = Signal(range(kh_n))
        ow = Signal(range(u.out_w))
        oh = Signal(range(u.out_h))

        col = Mux(wcf > 0, wcf, 0) if pl else wcf
        m.d.comb += keep.eq(Mux(h0 >= 0, hrow + col, rbase) if pt else hrow + col)

        # Padding needs no data, only that the frame has begun: a pad is not sent ahead of its
        # frame's first input beat, so no beat of a frame that never comes leaves the unit.
        begun = (wpos - rbase)[:nbits].as_signed() > 0
        pads, ready_pieces = [], []
        for j, (dkh, dkw, dpos) in enumerate(pieces):
            h = h0 + kh + dkh
            w = w0 + kw + dkw
            pad_terms = []
            if pt:
                pad_terms.append(h < 0)
            if u.pad_bottom:
                pad_terms.append(h >= u.in_h)
            if pl:
                pad_terms.append(w < 0)
            if u.pad_right:
                pad_terms.append(w >= in_w)
            pad = Signal(name=f"pad{j}")
            m.d.comb += pad.eq(Cat(*pad_terms).any() if pad_terms else 0)
            written = (wpos - (rpos + dpos))[:nbits].as_signed() > 0
            pads.append(pad)
            ready_pieces.append(Mux(pad, begun, written))

        avail = Signal()
        advance = Signal()
        m.d.comb += [avail.eq(Cat(*ready_pieces).all()), advance.eq(~self.out.valid | self.out.ready)]
        for rd, (_, _, dpos) in zip(reads, pieces):
            offset = dpos % depth
            nxt = raddr + offset
            m.d.comb += [rd.addr.eq(Mux(nxt >= depth, nxt - depth, nxt) if offset else raddr), rd.en.eq(advance)]

        def step(level: int) -> list:
            delta = steps[level]
            inc = delta % depth
            nxt = raddr + inc
            return [
                rpos.eq(rpos + (delta & mask)),
                raddr.eq(Mux(nxt >= depth, nxt - depth, nxt) if inc else raddr),
            ]

        with m.If(advance & avail):
            with m.If(cf != cf_n - s_cf):
                m.d.sync += [cf.eq(cf + s_cf), *step(0)]
            with m.Elif(kw != kw_n - s_kw):
                m.d.sync += [cf.eq(0), kw.eq(kw + s_kw), *step(1)]
            with m.Elif(kh != kh_n - s_kh):
                m.d.sync += [cf.eq(0), kw.eq(0), kh.eq(kh + s_kh), *step(2)]
            with m.Elif(ow != u.out_w - 1):
                m.d.sync += [
                    cf.eq(0), kw.eq(0), kh.eq(0), ow.eq(ow + 1),
                    w0.eq(w0 + sw), wcf.eq(wcf + sw * cf_n), *step(3),
                ]
            with m.Elif(oh != u.out_h - 1):
                m.d.sync += [
                    cf.eq(0), kw.eq(0), kh.eq(0), ow.eq(0), oh.eq(oh + 1),
                    w0.eq(-pl), wcf.eq(-pl * cf_n), h0.eq(h0 + sh),
                    hrow.eq(hrow + (sh * in_w * cf_n & mask)), *step(4),
                ]
            with m.Else():
                m.d.sync += [
                    cf.eq(0), kw.eq(0), kh.eq(0), ow.eq(0), oh.eq(0),
                    w0.eq(-pl), wcf.eq(-pl * cf_n), h0.eq(-pt),
                    rbase.eq(rbase + (ib & mask)),
                    hrow.eq(rbase + (lin(-pt, 0, 0) + ib & mask)), *step(5),
                ]

        # ---- output stage: re-encode (value-preserving) or pad, piece by piece
        pad_code = int(to_wire(np.array([u.pad_value]), u.output_dtype)[0])
        pad_word = Const(sum(pad_code << (i * obits) for i in range(u.SIMD)), u.SIMD * obits)
        v1 = Signal()
        words = []
        for j, rd in enumerate(reads):
            lanes = []
            for i in range(u.SIMD):
                lane = Signal(obits, name=f"lane{j}_{i}")
                code = rd.data[i * ibits : (i + 1) * ibits]
                # Assigning the decoded value sign-/zero-extends or truncates it to its low `obits`
                # bits: its two's complement code, as the value fits output_dtype.
                m.d.comb += lane.eq(code if is_bipolar(u.output_dtype) else decode(code, u.input_dtype))
                lanes.append(lane)
            pad1 = Signal(name=f"pad1_{j}")
            with m.If(advance):
                m.d.sync += pad1.eq(pads[j])
            words.append(Mux(pad1, pad_word, Cat(*lanes)))
        with m.If(advance):
            m.d.sync += [v1.eq(avail), self.out.valid.eq(v1), self.out.payload.eq(Cat(*words))]
        return m

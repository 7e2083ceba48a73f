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
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
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
#: the writer stops this many beats short of the buffer's depth: its `ready` is a register, set a
#: cycle before the beat it admits (the writer's count only grows, so the margin keeps it safe)
WRITE_MARGIN = 1
#: the beats the buffer holds beyond what the schedule needs, for that cycle
WRITE_LAG = 1
#: position counts wider than this take every candidate of their next value before the write
#: that picks one (five CARRY4 slices and more)
CARRY_SELECT_BITS = 16


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
        window after the frame's last); and `WRITE_LAG` more, for the writer's registered view of
        `keep`."""
        keep, last = self._window_bounds()
        nxt = np.append(last[1:], last[0] + self.inputs[0].beats_per_frame)
        return int(np.max(nxt - keep + 1)) + WRITE_LAG

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
        further piece, its address register's two candidate steps and their pick (2 per address
        bit, though Yosys makes nearer 3: the cheaper count keeps the folding CNV had at 12,200 FPS,
        which by Yosys is 41 LUTs smaller than the one the dearer count picks; the pieces lie at
        constant distances, so their written-yet compares reduce to the group's). Checked against
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
        # with padding: each loop level's pads and `need` for the next group and the picks of the
        # counts as and-or logic (~4 per position bit, 8 per piece); counts wider than
        # `CARRY_SELECT_BITS`: two adders more (Yosys, ImageNet-sized window generators)
        pad_logic = 4 * pos_bits + 8 * self.MMV if padded else 0
        carry_select = 2 * pos_bits if pos_bits > CARRY_SELECT_BITS else 0
        return (
            self.MMV * buffer
            + (self.MMV * self.SIMD * self.output_dtype.bitwidth() if padded else 0)
            + sliding + 4 * addr_bits + 3 * loops + 4
            + (self.MMV - 1) * 2 * addr_bits + pad_logic + carry_select
        )

    def est_brams(self) -> int:
        """The buffer in block RAM, a copy per read port."""
        return self.MMV * memory_bram18(self.buffer_beats, self.SIMD * self.input_dtype.bitwidth())


def _position_bits(u: SlidingWindow) -> int:
    """Width of the absolute position counters: differences of positions stay below
    2*(beats per frame + buffer), so this many bits make every wrapped difference exact."""
    return (2 * (u.inputs[0].beats_per_frame + u.buffer_beats)).bit_length() + 1


class SlidingWindowComponent(wiring.Component):
    """Gateware of `SlidingWindow`: a circular buffer between a writer and a window reader, every
    decision taken from registers so that no path holds more than one adder's carry chain and a
    few LUTs (the clocks of UltraScale+ parts).

    Writer: `inp.ready` is a register: set while `W - keep < depth - WRITE_MARGIN` (W: beats
    written so far), `keep + depth - WRITE_MARGIN` a register stepped with the reader
    (`buffer_beats` holds the margin).
    Reader, two stages under `advance = ~out.valid | out.ready`: stage 1 issues the buffer reads
    of the current group (one read port per piece, each with its own registered address) when the
    group is available, and steps the loop counters; stage 2 re-encodes the read beats (or takes
    the pad word) into the output register. Availability is a register compare: `lead` (W minus
    the group's first position, less one) against `need` (the offset of the group's last piece
    that is not padding; without padding a constant that `lead` counts from, so that the compare
    is its sign bit), and `begun` (W past the frame's start) for a group all padding. Each
    registered value the next group needs (its addresses, `lead`, its pads, `need`, the step it
    will take) is computed beside the current one for both outcomes, stepping or not, and picked
    when the group issues.
    """

    def __init__(self, unit: SlidingWindow) -> None:
        self.unit = unit
        super().__init__(stream_ports(unit.inputs[0].width, unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        cf_n, kh_n, kw_n = u.folds, u.kernel_h, u.kernel_w
        sh, sw, pt, pl, pb, pr = u.stride_h, u.stride_w, u.pad_top, u.pad_left, u.pad_bottom, u.pad_right
        in_w, in_h = u.in_w, u.in_h
        ib = u.inputs[0].beats_per_frame
        depth = u.buffer_beats
        nbits = _position_bits(u)
        mask = (1 << nbits) - 1
        h_last = sh * (u.out_h - 1) - pt
        w_last = sw * (u.out_w - 1) - pl
        s_cf, s_kw, s_kh = u.loop_steps()
        pieces = u.piece_offsets()
        last = (cf_n - s_cf, kw_n - s_kw, kh_n - s_kh, u.out_w - 1, u.out_h - 1)

        def lin(h: int, w: int, c: int) -> int:
            """Buffer position of channel fold c of pixel (h, w), relative to the frame."""
            return (h * in_w + w) * cf_n + c

        # position steps of a group's first piece, one per loop level that wraps (cf, kw, kh, ow,
        # oh, frame), from the first piece of the level's last group
        last_group = (kh_n - s_kh, kw_n - s_kw, cf_n - s_cf)
        steps = [
            s_cf,
            lin(0, s_kw, 0) - lin(0, 0, cf_n - s_cf),
            lin(s_kh, 0, 0) - lin(0, kw_n - s_kw, cf_n - s_cf),
            lin(0, sw, 0) - lin(*last_group),
            lin(sh, -pl - w_last, 0) - lin(*last_group),
            ib + lin(-pt - h_last, -pl - w_last, 0) - lin(*last_group),
        ]

        def level_of(flags: tuple) -> int:
            """The loop level a group steps at: the first counter not at its last value."""
            return next((i for i, f in enumerate(flags) if not f), 5)

        ibits, obits = u.input_dtype.bitwidth(), u.output_dtype.bitwidth()
        width = u.SIMD * ibits
        m.submodules.buf = mem = Memory(
            shape=unsigned(width), depth=depth, init=[], attrs=memory_attrs(depth, width, rom=False)
        )
        wr = mem.write_port()
        reads = [mem.read_port(domain="sync") for _ in pieces]
        advance = Signal()
        m.d.comb += advance.eq(~self.out.valid | self.out.ready)

        # ---- reader state: the loop counters and the window's place
        first = lin(-pt, -pl, 0)
        cf, kw, kh = Signal(range(cf_n)), Signal(range(kw_n)), Signal(range(kh_n))
        ow, oh = Signal(range(u.out_w)), Signal(range(u.out_h))
        h0 = Signal(range(-pt, h_last + 1), init=-pt)  # window top-left pixel
        w0 = Signal(range(-pl, w_last + 1), init=-pl)
        hk = Signal(range(-pt, h_last + kh_n), init=-pt)  # the group's first piece: h0 + kh, w0 + kw
        wk = Signal(range(-pl, w_last + kw_n), init=-pl)
        room = depth - WRITE_MARGIN
        # the next column's w0 * folds, whether it is past the left padding, and the frame's and
        # the window row's positions plus `room`: registers, so that the next `keep` is one add
        cstep = sw * cf_n
        wnext = Signal(range(min(0, (sw - pl) * cf_n), (w_last + sw) * cf_n + 1), init=(sw - pl) * cf_n)
        wnext_pos = Signal(init=int(sw > pl))
        rroom = Signal(nbits, init=room & mask)  # position of the reader's frame + room
        hroom = Signal(nbits, init=(lin(-pt, 0, 0) + room) & mask)  # rroom + lin(h0, 0, 0)
        # a loop level whose counter has one value never steps: its flag is a constant, and no
        # logic is built for it
        possible = [lv for lv in range(6) if lv == 5 or last[lv] != 0]
        flags = [Signal(name=f"last{i}", init=int(last[i] == 0)) if i in possible else Const(1, 1) for i in range(5)]
        level = Signal(range(6))
        m.d.comb += level.eq(5)
        for i in reversed(range(5)):
            with m.If(~flags[i]):
                m.d.comb += level.eq(i)
        init_level = level_of(tuple(last[i] == 0 for i in range(5)))

        # ---- writer: a registered ready against `keep + depth - margin`, kept as a register of its
        # own and stepped with the reader (`keep`: the first beat the current window may still need)
        wpos = Signal(nbits)
        waddr = Signal(range(depth))
        ready = Signal()

        def keep_after_column() -> Value:
            """`keep` + room of the next window in the row: its row's start plus its first column
            (clamped to the row where it lies in the left padding), or the frame's start for a
            window in the top padding."""
            col = Mux(wnext_pos, wnext, 0) if pl else wnext
            inside = (hroom + col)[:nbits]
            return Mux(h0[-1], rroom, inside) if pt else inside

        def keep_after_row() -> Value:
            """`keep` + room of the next row's first window (its first column lies at or left of 0)."""
            inside = hroom + (sh * in_w * cf_n & mask)
            return Mux(h0 < -sh, rroom, inside) if pt else inside

        keep_limit = Signal(nbits, init=room & mask)  # the first window keeps the frame's start
        m.d.sync += ready.eq((wpos - keep_limit)[:nbits].as_signed() < 0)
        wrote = Signal()
        m.d.comb += [
            self.inp.ready.eq(ready), wrote.eq(self.inp.valid & ready),
            wr.addr.eq(waddr), wr.data.eq(self.inp.payload), wr.en.eq(wrote),
        ]
        with m.If(wrote):
            m.d.sync += [wpos.eq(wpos + 1), waddr.eq(wrap_inc(waddr, depth))]

        # ---- the step the current group takes, and its consequences for the next group
        back0 = Signal(nbits, init=-steps[init_level] & mask)  # -(the step), and 1 - (the step)
        back1 = Signal(nbits, init=(1 - steps[init_level]) & mask)
        inc = Signal(range(depth), init=steps[init_level] % depth)
        # W - (group's first position) - 1, less the last piece's offset where there is no padding
        lead_from = 0 if (pt or pl or pb or pr) else pieces[-1][2]
        lead = Signal(nbits, init=(-first - 1 - lead_from) & mask)
        flead = Signal(nbits, init=mask)  # W - (frame's first position) - 1
        addrs = [Signal(range(depth), name=f"addr{j}", init=(first + dpos) % depth) for j, (_, _, dpos) in enumerate(pieces)]

        def pads_at(hv, wv) -> list:
            """Per piece, whether a group with its first piece at (hv, wv) reads padding there."""
            hv, wv = Value.cast(hv), Value.cast(wv)
            out = []
            for dkh, dkw, _ in pieces:
                terms = []
                if pt:
                    terms.append(hv < -dkh)
                if pb:
                    terms.append(hv >= in_h - dkh)
                if pl:
                    terms.append(wv < -dkw)
                if pr:
                    terms.append(wv >= in_w - dkw)
                out.append(Cat(*terms).any() if terms else Const(0, 1))
            return out

        def need_of(pads: list) -> tuple:
            """(offset of the last piece that is no padding, whether there is one)."""
            need = Const(0, nbits)
            for j in range(len(pieces)):  # pieces lie in ascending offsets: the last one wins
                need = Mux(pads[j], need, pieces[j][2])
            return need, ~Cat(*pads).all()

        def initial_pads() -> list[int]:
            return [int((pt and -pt < -dkh) or (pb and -pt >= in_h - dkh) or (pl and -pl < -dkw)
                        or (pr and -pl >= in_w - dkw)) for dkh, dkw, _ in pieces]

        pad = [Signal(name=f"pad{j}", init=v) for j, v in enumerate(initial_pads())]
        init_need = max([d for (_, _, d), p in zip(pieces, initial_pads()) if not p], default=0)
        need = Signal(nbits, init=init_need)
        has_data = Signal(init=int(not all(initial_pads())))
        padded = bool(pt or pl or pb or pr)
        if padded:
            written = ~(lead - need)[:nbits].as_signed()[-1]  # lead >= need
        else:  # `need` is the last piece's offset throughout: `lead` counts from it, a sign bit
            written = ~lead[-1]
        begun = ~flead[-1]
        avail = Signal()
        m.d.comb += avail.eq(Mux(has_data, written, begun))
        issue = Signal()
        m.d.comb += issue.eq(advance & avail)
        for rd, a in zip(reads, addrs):
            m.d.comb += [rd.addr.eq(a), rd.en.eq(advance)]

        # both outcomes of every register that follows the position, each computed on its own
        # (kept apart: merged, the adder would come after the decision) and picked by `issue`
        wr_bit = wrote.as_unsigned()

        def kept(value, name: str, shape=None) -> Signal:
            sig = Signal(shape if shape is not None else Value.cast(value).shape(), name=name, attrs={"keep": 1})
            m.d.comb += sig.eq(value)
            return sig

        def and_or(sel: Value, a: Value, b: Value) -> Value:
            """`Mux(sel, a, b)` as and-or logic: a mux of two adders sharing an operand is what
            Yosys's `opt_share` merges into one adder behind the mux, the decision first."""
            return (a & sel.replicate(nbits)) | (b & (~sel).replicate(nbits))

        def follow(reg: Signal, step: Value, back0: Value, back1: Value) -> Value:
            """The next value of a count that grows by one with each write and moves by `back0`
            where `step` (by `back1` with a write in the same clock). Short counts: two adds, one
            of a picked constant, picked by `step` (merged by Yosys into one adder behind the pick
            where there is no padding: then `step` waits only for a sign bit, and the merged adder
            saves ~160 LUTs over CNV's six window generators). Counts of more than `CARRY_SELECT_BITS`: every candidate
            computed without this clock's write and picked by it afterwards, so that `inp.valid`
            meets no carry chain (a 17-bit count was 9 levels)."""
            name = reg.name
            if nbits <= CARRY_SELECT_BITS:
                hold = kept(reg + wr_bit, f"{name}_hold", nbits)
                moved = kept(reg + Mux(wrote, back1, back0), f"{name}_step", nbits)
                return and_or(step, moved, hold) if padded else Mux(step, moved, hold)
            up = kept(reg + 1, f"{name}_up", nbits)
            moved0, moved1 = kept(reg + back0, f"{name}_step0", nbits), kept(reg + back1, f"{name}_step1", nbits)
            return and_or(step, and_or(wrote, moved1, moved0), and_or(wrote, up, reg))

        m.d.sync += [lead.eq(follow(lead, issue, back0, back1)),
                     flead.eq(follow(flead, issue & (level == 5), Const(-ib & mask, nbits), Const((1 - ib) & mask, nbits)))]
        abits = max(1, (depth - 1).bit_length())
        for j, a in enumerate(addrs):
            up = kept(a + inc, f"up{j}", abits + 1)
            wrapped = kept(a + inc - depth, f"wrapped{j}", signed(abits + 2))
            stepped = kept(Mux(wrapped >= 0, wrapped, up) if depth > 1 else 0, f"stepped{j}", abits)
            with m.If(issue):
                m.d.sync += a.eq(stepped)

        # per level: the next group's counters' last-value flags, its first piece's place and pads
        def after(lv: int) -> dict:
            zero = {i: int(last[i] == 0) for i in range(5)}
            nxt_flags = list(flags)
            if lv == 0:
                nxt_flags[0] = cf == last[0] - s_cf
            elif lv == 1:
                nxt_flags[0], nxt_flags[1] = zero[0], kw == last[1] - s_kw
            elif lv == 2:
                nxt_flags[:3] = [zero[0], zero[1], kh == last[2] - s_kh]
            elif lv == 3:
                nxt_flags[:4] = [zero[0], zero[1], zero[2], ow == last[3] - 1]
            elif lv == 4:
                nxt_flags[:5] = [zero[0], zero[1], zero[2], zero[3], oh == last[4] - 1]
            else:
                nxt_flags = [zero[i] for i in range(5)]
            place = {0: (hk, wk), 1: (hk, wk + s_kw), 2: (hk + s_kh, w0), 3: (h0, w0 + sw), 4: (h0 + sh, -pl),
                     5: (-pt, -pl)}[lv]
            return {"flags": nxt_flags, "pads": pads_at(*place)}

        outcomes = {lv: after(lv) for lv in possible}
        # every register the step moves: its next value per level, computed from registers alone,
        # then taken when the group issues (the decision comes last)
        moves: list[tuple[Signal, dict[int, object]]] = []
        for i, f in enumerate(flags):
            if isinstance(f, Signal):
                moves.append((f, {lv: out["flags"][i] for lv, out in outcomes.items()}))
        for j, p in enumerate(pad):
            moves.append((p, {lv: out["pads"][j] for lv, out in outcomes.items()}))
        needs = {lv: need_of(out["pads"]) for lv, out in outcomes.items()}
        moves.append((need, {lv: n for lv, (n, _) in needs.items()}))
        moves.append((has_data, {lv: d for lv, (_, d) in needs.items()}))
        nxt_levels = {}
        for lv, out in outcomes.items():
            nl = Signal(range(6), name=f"next_level{lv}")
            m.d.comb += nl.eq(5)
            for i in reversed(range(5)):
                with m.If(~Value.cast(out["flags"][i])):
                    m.d.comb += nl.eq(i)
            nxt_levels[lv] = nl
        back0_of = Array([Const(-steps[nl] & mask, nbits) for nl in range(6)])
        back1_of = Array([Const((1 - steps[nl]) & mask, nbits) for nl in range(6)])
        inc_of = Array([Const(steps[nl] % depth, range(depth)) for nl in range(6)])
        moves.append((back0, {lv: back0_of[nl] for lv, nl in nxt_levels.items()}))
        moves.append((back1, {lv: back1_of[nl] for lv, nl in nxt_levels.items()}))
        moves.append((inc, {lv: inc_of[nl] for lv, nl in nxt_levels.items()}))
        moves += [
            (cf, {0: cf + s_cf, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0}),
            (kw, {1: kw + s_kw, 2: 0, 3: 0, 4: 0, 5: 0}),
            (kh, {2: kh + s_kh, 3: 0, 4: 0, 5: 0}),
            (ow, {3: ow + 1, 4: 0, 5: 0}),
            (oh, {4: oh + 1, 5: 0}),
            (w0, {3: w0 + sw, 4: -pl, 5: -pl}),
            (wk, {1: wk + s_kw, 2: w0, 3: w0 + sw, 4: -pl, 5: -pl}),
            (hk, {2: hk + s_kh, 3: h0, 4: h0 + sh, 5: -pt}),
            (h0, {4: h0 + sh, 5: -pt}),
            (wnext, {3: wnext + cstep, 4: (sw - pl) * cf_n, 5: (sw - pl) * cf_n}),
            (wnext_pos, {3: wnext > -cstep, 4: int(sw > pl), 5: int(sw > pl)}),
            (hroom, {4: hroom + (sh * in_w * cf_n & mask), 5: rroom + (lin(-pt, 0, 0) + ib & mask)}),
            (rroom, {5: rroom + (ib & mask)}),
            (keep_limit, {3: keep_after_column(), 4: keep_after_row(), 5: rroom + (ib & mask)}),
        ]
        for k, (reg, by_level) in enumerate(moves):
            nxt = Signal.like(reg, name=f"next{k}")
            m.d.comb += nxt.eq(reg)
            with m.Switch(level):
                for lv, value in by_level.items():
                    if lv not in possible:
                        continue
                    with m.Case(lv):
                        m.d.comb += nxt.eq(value)
            with m.If(issue):
                m.d.sync += reg.eq(nxt)

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
                m.d.sync += pad1.eq(pad[j])
            words.append(Mux(pad1, pad_word, Cat(*lanes)))
        with m.If(advance):
            m.d.sync += [v1.eq(avail), self.out.valid.eq(v1), self.out.payload.eq(Cat(*words))]
        return m

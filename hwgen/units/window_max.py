"""WindowMax: the per-channel maximum over each window a `SlidingWindow` emits, for max pooling
whose windows overlap or are padded (the 3x3, stride 2, padding 1 pool of ResNet stems).

The input is the window stream: per output pixel, the `positions` window positions in (kh, kw)
order, each as `channels / SIMD` beats of `SIMD` channels. A register per channel fold holds the
running maximum; on a window's last position the maximum with that beat leaves as the output beat
instead. Padding is the datatype's smallest value (the window generator's `pad_value`), which the
maximum never picks over a real pixel: PyTorch pads max pooling with -inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import check_dtype, check_positive, check_values, memory_luts, wrap_inc
from hwgen.units.maxpool import max_lane

_WHERE = "WindowMax"


@dataclass(frozen=True)
class WindowMax(Unit):
    """Maximum over `positions` window positions, per channel, for `out_pixels` windows."""

    FOLDING = (("SIMD", "channels"),)

    channels: int
    SIMD: int
    positions: int
    out_pixels: int
    dtype: BaseDataType

    def __post_init__(self) -> None:
        check_positive(self, ("channels", "SIMD", "positions", "out_pixels"), _WHERE)
        if self.channels % self.SIMD:
            raise HwgenError(f"SIMD={self.SIMD} does not divide channels={self.channels}", where=_WHERE)
        check_dtype(self.dtype, "dtype", _WHERE)

    @property
    def folds(self) -> int:
        return self.channels // self.SIMD

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.dtype, self.SIMD, self.out_pixels * self.positions * self.folds),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.dtype, self.SIMD, self.out_pixels * self.folds),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        x = check_values(x, self.dtype, "WindowMax input")
        n = x.shape[0]
        return x.reshape(n, self.out_pixels, self.positions, self.channels).max(axis=2).reshape(n, -1)

    def component(self) -> wiring.Component:
        return WindowMaxComponent(self)

    def held_fraction(self) -> float:
        """One window (and the pipeline register)."""
        return min(1.0, 2 / self.out_pixels)

    def least_held_fraction(self) -> float:
        """One window."""
        return 1 / self.out_pixels

    def output_burst(self) -> float:
        """A window's result leaves on its last position, one beat per channel fold, back to back."""
        return self.folds * (1 - 1 / self.positions)

    def est_cycles(self) -> int:
        return self.inputs[0].beats_per_frame

    def est_luts(self) -> int:
        """Per lane a comparator and a select per bit (an OR for 1-bit types), the running maxima
        in LUTRAM, and the position and fold counters."""
        bits = self.dtype.bitwidth()
        lane = 1 if bits == 1 else 2 * bits
        return self.SIMD * lane + memory_luts(max(self.folds, 64), self.SIMD * bits) + 24

    def est_brams(self) -> int:
        return 0


class WindowMaxComponent(wiring.Component):
    """One beat per clock: the running maxima live in a memory with an asynchronous read (LUTRAM)
    addressed by the channel fold; a window's last position writes the output register instead.
    advance = output register empty or taken; inp.ready = advance."""

    def __init__(self, unit: WindowMax) -> None:
        self.unit = unit
        super().__init__(stream_ports(unit.inputs[0].width, unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        bits = u.dtype.bitwidth()
        width = u.SIMD * bits
        m.submodules.maxima = mem = Memory(shape=unsigned(width), depth=u.folds, init=[],
                                           attrs={"ram_style": "distributed"})
        wr = mem.write_port()
        rd = mem.read_port(domain="comb")
        fold = Signal(range(u.folds))
        position = Signal(range(u.positions))
        advance = Signal()
        fire = Signal()
        m.d.comb += [advance.eq(~self.out.valid | self.out.ready), self.inp.ready.eq(advance),
                     fire.eq(self.inp.valid & advance), rd.addr.eq(fold), wr.addr.eq(fold)]
        combine = max_lane(u.dtype)
        maxima = Cat(*[combine(rd.data[i * bits:(i + 1) * bits], self.inp.payload[i * bits:(i + 1) * bits])
                       for i in range(u.SIMD)])
        first, last = position == 0, position == u.positions - 1
        running = Signal(width)
        m.d.comb += [running.eq(self.inp.payload), wr.data.eq(running)]
        with m.If(~first):
            m.d.comb += running.eq(maxima)
        m.d.comb += wr.en.eq(fire & ~last)
        with m.If(fire):
            m.d.sync += fold.eq(wrap_inc(fold, u.folds))
            with m.If(fold == u.folds - 1):
                m.d.sync += position.eq(wrap_inc(position, u.positions))
        with m.If(advance):
            m.d.sync += self.out.valid.eq(fire & last)
            with m.If(fire & last):
                m.d.sync += self.out.payload.eq(running)
        return m

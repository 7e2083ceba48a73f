"""SumPool: the sum of each channel over `kernel_h` x `kernel_w` windows (stride = window) of an
NHWC image, or over the whole image (`kernel_h = kernel_w = 0`, global pooling).

Average pooling without the division by the window size: what follows (thresholds, a table)
absorbs that scale, exactly as the model rounds it. The output datatype is the smallest
INTn/UINTn holding every possible sum (`output_dtype`), so nothing saturates. The gateware is
`PoolComponent` with an adder per lane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Value
from amaranth.lib import wiring
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.units.base import StreamSpec, Unit
from hwgen.units.datapath import (
    check_dtype,
    check_positive,
    check_values,
    decode,
    memory_bram18,
    memory_luts,
    smallest_int_dtype,
)
from hwgen.units.maxpool import PoolComponent, pool_control_luts, pool_output_burst

_WHERE = "SumPool"


@dataclass(frozen=True)
class SumPool(Unit):
    """Per-channel sums over windows of `channels` channels, `PE` channels per beat."""

    FOLDING = (("PE", "channels"),)

    in_h: int
    in_w: int
    channels: int
    PE: int
    input_dtype: BaseDataType
    kernel_h: int = 0
    kernel_w: int = 0

    def __post_init__(self) -> None:
        check_positive(self, ("in_h", "in_w", "channels", "PE"), _WHERE)
        if (self.kernel_h == 0) != (self.kernel_w == 0):
            raise HwgenError("kernel_h and kernel_w are both 0 (global) or both set", where=_WHERE)
        if self.kernel_h:
            check_positive(self, ("kernel_h", "kernel_w"), _WHERE)
            if self.kernel_h > self.in_h or self.kernel_w > self.in_w:
                raise HwgenError(f"window {self.kernel_h}x{self.kernel_w} is larger than the image "
                                 f"{self.in_h}x{self.in_w}", where=_WHERE)
        if self.channels % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide channels={self.channels}", where=_WHERE)
        check_dtype(self.input_dtype, "input_dtype", _WHERE)

    @property
    def pixels(self) -> int:
        return self.in_h * self.in_w

    @property
    def window(self) -> tuple[int, int]:
        return (self.kernel_h, self.kernel_w) if self.kernel_h else (self.in_h, self.in_w)

    @property
    def out_pixels(self) -> int:
        kh, kw = self.window
        return (self.in_h // kh) * (self.in_w // kw)

    @property
    def output_dtype(self) -> BaseDataType:
        """The smallest integer datatype holding a window's size times any input value."""
        n = self.window[0] * self.window[1]
        return smallest_int_dtype(n * int(self.input_dtype.min()), n * int(self.input_dtype.max()))

    @property
    def folds(self) -> int:
        return self.channels // self.PE

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.input_dtype, self.PE, self.pixels * self.folds),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.output_dtype, self.PE, self.out_pixels * self.folds),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        x = check_values(x, self.input_dtype, "SumPool input")
        n = x.shape[0]
        kh, kw = self.window
        oh, ow = self.in_h // kh, self.in_w // kw
        img = x.reshape(n, self.in_h, self.in_w, self.channels)[:, : oh * kh, : ow * kw]
        return img.reshape(n, oh, kh, ow, kw, self.channels).sum(axis=(2, 4)).reshape(n, -1)

    def component(self) -> wiring.Component:
        idt, odt = self.input_dtype, self.output_dtype

        def acc_value(acc: Value) -> Value:
            return acc.as_signed() if odt.signed() else acc

        return PoolComponent(
            in_h=self.in_h, in_w=self.in_w, folds=self.folds, pool_h=self.window[0], pool_w=self.window[1],
            lanes=self.PE, in_bits=idt.bitwidth(), acc_bits=odt.bitwidth(),
            # The accumulator signal takes the low bits of each value: its two's complement code,
            # since every partial sum fits output_dtype.
            load=lambda x: decode(x, idt),
            combine=lambda acc, x: acc_value(acc) + decode(x, idt),
        )

    def _acc_shape(self) -> tuple[int, int]:
        return (self.in_w // self.window[1]) * self.folds, self.PE * self.output_dtype.bitwidth()

    def held_fraction(self) -> float:
        """A row of windows and one more row; the whole frame for a global pool."""
        return min(1.0, (self.window[0] + 1) / self.in_h)

    def least_held_fraction(self) -> float:
        """The first window: its rows but the last one's tail (all of it for a global pool)."""
        kh, kw = self.window
        return ((kh - 1) * self.in_w + kw) / self.pixels

    def output_burst(self) -> float:
        """A row of windows' results (a global pool: the frame's, at its end)."""
        kh, kw = self.window
        return pool_output_burst(self.in_w // kw, self.folds, kh)

    def est_cycles(self) -> int:
        return self.inputs[0].beats_per_frame

    def est_luts(self) -> int:
        """Per lane an adder and a load select (~2 LUTs per accumulator bit), the accumulators if
        not in block RAM, and the position counters."""
        return (
            2 * self.PE * self.output_dtype.bitwidth()
            + memory_luts(*self._acc_shape())
            + pool_control_luts(self.in_h, self.in_w, self.folds)
        )

    def est_brams(self) -> int:
        return memory_bram18(*self._acc_shape())

"""GlobalAccPool: the sum of each channel over all pixels of an NHWC image.

Global average pooling without the division by `in_h * in_w`: the next layer's thresholds absorb
that scale. The output datatype is the smallest INTn/UINTn holding every possible sum
(`output_dtype`), so nothing saturates. The gateware is `PoolComponent` with one window covering
the whole image and an adder per lane.
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
from hwgen.units.maxpool import PoolComponent, pool_control_luts

_WHERE = "GlobalAccPool"


@dataclass(frozen=True)
class GlobalAccPool(Unit):
    """Per-channel sum over `in_h` x `in_w` pixels of `channels` channels, `PE` channels per beat."""

    FOLDING = (("PE", "channels"),)

    in_h: int
    in_w: int
    channels: int
    PE: int
    input_dtype: BaseDataType

    def __post_init__(self) -> None:
        check_positive(self, ("in_h", "in_w", "channels", "PE"), _WHERE)
        if self.channels % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide channels={self.channels}", where=_WHERE)
        check_dtype(self.input_dtype, "input_dtype", _WHERE)

    @property
    def pixels(self) -> int:
        return self.in_h * self.in_w

    @property
    def output_dtype(self) -> BaseDataType:
        """The smallest integer datatype holding `pixels` times any input value."""
        return smallest_int_dtype(self.pixels * int(self.input_dtype.min()), self.pixels * int(self.input_dtype.max()))

    @property
    def folds(self) -> int:
        return self.channels // self.PE

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.input_dtype, self.PE, self.pixels * self.folds),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.output_dtype, self.PE, self.folds),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        x = check_values(x, self.input_dtype, "GlobalAccPool input")
        return x.reshape(x.shape[0], self.pixels, self.channels).sum(axis=1)

    def component(self) -> wiring.Component:
        idt, odt = self.input_dtype, self.output_dtype

        def acc_value(acc: Value) -> Value:
            return acc.as_signed() if odt.signed() else acc

        return PoolComponent(
            in_h=self.in_h, in_w=self.in_w, folds=self.folds, pool_h=self.in_h, pool_w=self.in_w,
            lanes=self.PE, in_bits=idt.bitwidth(), acc_bits=odt.bitwidth(),
            # The accumulator signal takes the low bits of each value: its two's complement code,
            # since every partial sum fits output_dtype.
            load=lambda x: decode(x, idt),
            combine=lambda acc, x: acc_value(acc) + decode(x, idt),
        )

    def _acc_shape(self) -> tuple[int, int]:
        return self.folds, self.PE * self.output_dtype.bitwidth()

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

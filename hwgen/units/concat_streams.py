"""ConcatStreams: channel concatenation of K streams (BinaryDenseNet's dense connections, ReActNet's
doubled channels).

Input `k` carries `channels[k]` channels per pixel, `PE` per beat, of its own integer datatype; the
output carries, per pixel, input 0's channels, then input 1's, ..., `PE` per beat, every element
re-encoded in `output_dtype`, which holds all the inputs' values (`concat_dtype`). Per pixel the
unit takes `channels[0] / PE` beats from input 0, then `channels[1] / PE` from input 1, and so on,
one beat per clock through one output register.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from qonnx.core.datatype import BaseDataType, DataType

from hwgen.errors import HwgenError
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import check_dtype, check_positive, check_values, decode, smallest_int_dtype

_WHERE = "ConcatStreams"


def concat_dtype(dtypes: tuple[BaseDataType, ...]) -> BaseDataType:
    """The smallest datatype holding every value of every input (BIPOLAR inputs become INT2)."""
    if all(d == DataType["BIPOLAR"] for d in dtypes):
        return DataType["BIPOLAR"]
    return smallest_int_dtype(min(int(d.min()) for d in dtypes), max(int(d.max()) for d in dtypes))


@dataclass(frozen=True)
class ConcatStreams(Unit):
    """Concatenate `len(channels)` streams of `pixels` vectors along the channel axis."""

    FOLDING = (("PE", "channels"),)

    channels: tuple[int, ...]
    PE: int
    pixels: int
    input_dtypes: tuple[BaseDataType, ...]
    output_dtype: BaseDataType

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "input_dtypes", tuple(self.input_dtypes))
        check_positive(self, ("PE", "pixels"), _WHERE)
        if len(self.channels) < 2 or len(self.channels) != len(self.input_dtypes):
            raise HwgenError(f"needs two or more inputs, one datatype each (channels {self.channels}, "
                             f"{len(self.input_dtypes)} datatypes)", where=_WHERE)
        for k, (c, d) in enumerate(zip(self.channels, self.input_dtypes)):
            if c < 1 or c % self.PE:
                raise HwgenError(f"PE={self.PE} does not divide channels[{k}]={c}", where=_WHERE)
            check_dtype(d, f"input_dtypes[{k}]", _WHERE)
        check_dtype(self.output_dtype, "output_dtype", _WHERE)
        for k, d in enumerate(self.input_dtypes):
            bipolar_into_bipolar = d == DataType["BIPOLAR"] == self.output_dtype
            if not bipolar_into_bipolar and (self.output_dtype == DataType["BIPOLAR"] or d.min() < self.output_dtype.min()
                                             or d.max() > self.output_dtype.max()):
                raise HwgenError(f"output_dtype {self.output_dtype.name} cannot hold input {k} ({d.name})",
                                 where=_WHERE)

    @classmethod
    def stream_counts(cls, attrs: Mapping[str, object]) -> tuple[int, int]:
        return len(attrs["channels"]), 1

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return tuple(StreamSpec(d, self.PE, self.pixels * c // self.PE)
                     for c, d in zip(self.channels, self.input_dtypes))

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.output_dtype, self.PE, self.pixels * sum(self.channels) // self.PE),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        parts = []
        for k, (x, c, d) in enumerate(zip(frames, self.channels, self.input_dtypes)):
            x = check_values(x, d, f"ConcatStreams input {k}")
            parts.append(x.reshape(x.shape[0], self.pixels, c))
        return np.concatenate(parts, axis=2).reshape(parts[0].shape[0], -1)

    def component(self) -> wiring.Component:
        return ConcatComponent(self)

    def held_fraction(self) -> float:
        """Inputs are taken one after the other for each pixel: a pixel and its register."""
        return min(1.0, 2 / self.pixels)

    def turn_beats(self, stream: int) -> int:
        """The other parts of a pixel."""
        return sum(c for i, c in enumerate(self.channels) if i != stream) // self.PE

    def est_cycles(self) -> int:
        return self.outputs[0].beats_per_frame

    def est_luts(self) -> int:
        """A K-way select per output bit (~1 LUT per bit up to 4 inputs), the fold counters."""
        k = len(self.channels)
        return self.PE * self.output_dtype.bitwidth() * max(1, (k + 2) // 4 + (k > 1)) + 4 * k + 8

    def est_brams(self) -> int:
        return 0


class ConcatComponent(wiring.Component):
    def __init__(self, unit: ConcatStreams) -> None:
        self.unit = unit
        super().__init__(stream_ports([s.width for s in unit.inputs], unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        k_in = len(u.channels)
        ins = [getattr(self, f"inp{k}") for k in range(k_in)]
        obits = u.output_dtype.bitwidth()
        folds = [c // u.PE for c in u.channels]
        sel = Signal(range(k_in))
        fold = Signal(range(max(folds)))
        advance = Signal()
        m.d.comb += advance.eq(~self.out.valid | self.out.ready)

        beats = []
        for k, (port, d) in enumerate(zip(ins, u.input_dtypes)):
            m.d.comb += port.ready.eq(advance & (sel == k))
            if d == u.output_dtype:
                beats.append(port.payload)
                continue
            bits = d.bitwidth()
            lanes = []
            for pe in range(u.PE):
                # assigning to an `obits` wide signal extends the value by its own signedness:
                # the result is the element's code in the output datatype
                lane = Signal(obits, name=f"in{k}_lane{pe}")
                m.d.comb += lane.eq(decode(port.payload[pe * bits:(pe + 1) * bits], d))
                lanes.append(lane)
            beats.append(Cat(*lanes))
        valid, payload, last = ins[0].valid, beats[0], fold == folds[0] - 1
        for k in range(1, k_in):
            valid = Mux(sel == k, ins[k].valid, valid)
            payload = Mux(sel == k, beats[k], payload)
            last = Mux(sel == k, fold == folds[k] - 1, last)

        with m.If(advance & valid):
            with m.If(last):
                m.d.sync += [fold.eq(0), sel.eq(Mux(sel == k_in - 1, 0, sel + 1))]
            with m.Else():
                m.d.sync += fold.eq(fold + 1)
        with m.If(advance):
            m.d.sync += [self.out.valid.eq(valid), self.out.payload.eq(payload)]
        return m

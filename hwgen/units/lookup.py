"""ChannelwiseLookup: any elementwise integer function as a table, per channel or shared.

    out[p, c] = table[c, x[p, c] - input_dtype.min()]        (one row per channel)
    out[p, c] = table[0, x[p, c] - input_dtype.min()]        (one row shared by every channel)

Exact for every function of one integer, monotone or not: RPReLU (shift, PReLU with a per-channel
slope that may be negative, shift) between two 8-bit quantizers, a BatchNorm on an 8-bit path, a
requantization. An 8-bit to 8-bit function is a 256-entry row per channel: `channels * 256 * 8`
bits of ROM and one read per element, against 255 comparators per lane for the same function as
thresholds, so lowering takes a table wherever the input range is small and the function has more
than a few levels (see `hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds`).

Each of the `PE` lanes reads its own ROM: lane `pe` holds the rows of channels `f * PE + pe`
(or the shared row), addressed by (channel fold, input value). Two stages under one stall signal,
one beat per clock, as in `Thresholding`.
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
from hwgen.units.datapath import (
    check_dtype,
    check_positive,
    check_values,
    decode,
    int_array,
    memory_attrs,
    memory_bram18,
    memory_luts,
    pack_words,
    wrap_inc,
)
from hwgen.streams import to_wire

_WHERE = "ChannelwiseLookup"
#: the largest input range a table is built for (entries per row)
MAX_ENTRIES = 1 << 12


@dataclass(frozen=True, eq=False)
class ChannelwiseLookup(Unit):
    """A table lookup per element over `pixels` vectors of `channels` channels, `PE` per beat.

    table: int array (channels or 1, input range), entry `i` the output for input `min + i`."""

    FOLDING = (("PE", "channels"),)

    channels: int
    PE: int
    pixels: int
    input_dtype: BaseDataType
    output_dtype: BaseDataType
    table: np.ndarray

    def __post_init__(self) -> None:
        check_positive(self, ("channels", "PE", "pixels"), _WHERE)
        if self.channels % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide channels={self.channels}", where=_WHERE)
        check_dtype(self.input_dtype, "input_dtype", _WHERE)
        check_dtype(self.output_dtype, "output_dtype", _WHERE)
        entries = self.entries
        if entries > MAX_ENTRIES:
            raise HwgenError(f"input_dtype {self.input_dtype.name} has {entries} values; a table holds at "
                             f"most {MAX_ENTRIES}", where=_WHERE)
        rows = np.asarray(self.table).shape[0] if np.asarray(self.table).ndim == 2 else -1
        if rows not in (1, self.channels):
            raise HwgenError(f"table needs 1 or {self.channels} rows of {entries} entries, "
                             f"got shape {np.asarray(self.table).shape}", where=_WHERE)
        table = int_array(self.table, "table", (rows, entries), _WHERE, self.output_dtype)
        object.__setattr__(self, "table", table)

    @property
    def entries(self) -> int:
        return int(self.input_dtype.max()) - int(self.input_dtype.min()) + 1

    @property
    def shared(self) -> bool:
        return self.table.shape[0] == 1

    @property
    def folds(self) -> int:
        return self.channels // self.PE

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.input_dtype, self.PE, self.pixels * self.folds),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.output_dtype, self.PE, self.pixels * self.folds),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        x = check_values(x, self.input_dtype, "ChannelwiseLookup input")
        n = x.shape[0]
        index = x.reshape(n, self.pixels, self.channels) - int(self.input_dtype.min())
        rows = np.zeros(self.channels, np.int64) if self.shared else np.arange(self.channels)
        return self.table[rows[None, None, :], index].reshape(n, -1)

    def component(self) -> wiring.Component:
        return LookupComponent(self)

    def _rom_shape(self) -> tuple[int, int]:
        """(depth, width) of one lane's ROM."""
        return (1 if self.shared else self.folds) * self.entries, self.output_dtype.bitwidth()

    def lane_rom(self, pe: int) -> list[int]:
        """Lane `pe`'s ROM image: word (fold * entries + i) = code of the output for input min + i."""
        rows = self.table if self.shared else self.table[pe::self.PE]
        codes = to_wire(rows.reshape(-1, 1), self.output_dtype)
        return pack_words(codes, self.output_dtype.bitwidth())

    def est_cycles(self) -> int:
        return self.inputs[0].beats_per_frame

    def est_luts(self) -> int:
        """The lanes' ROMs when they are not in block RAM, an address adder per lane, control."""
        depth, width = self._rom_shape()
        addr_bits = max(1, (depth - 1).bit_length())
        return self.PE * (memory_luts(depth, width) + addr_bits) + 8

    def parameter_memories(self) -> list[tuple[int, int, str]]:
        return [(*self._rom_shape(), "table")] * self.PE

    def est_brams(self) -> int:
        return self.PE * memory_bram18(*self._rom_shape())


class LookupComponent(wiring.Component):
    """stage 1: accept a beat; each lane's ROM (synchronous read, enable = advance) is addressed by
    the beat's channel fold and element value; stage 2: register the looked-up codes.
    advance = output register empty or taken; inp.ready = advance."""

    def __init__(self, unit: ChannelwiseLookup) -> None:
        self.unit = unit
        super().__init__(stream_ports(unit.inputs[0].width, unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        ibits = u.input_dtype.bitwidth()
        depth, width = u._rom_shape()
        advance = Signal()
        fold = Signal(range(u.folds))
        v1 = Signal()
        m.d.comb += [advance.eq(~self.out.valid | self.out.ready), self.inp.ready.eq(advance)]
        with m.If(self.inp.valid & advance):
            m.d.sync += fold.eq(wrap_inc(fold, u.folds))
        low = int(u.input_dtype.min())
        codes = []
        for pe in range(u.PE):
            rom = Memory(shape=unsigned(width), depth=depth, init=u.lane_rom(pe),
                         attrs=memory_attrs(depth, width, rom=True))
            m.submodules[f"table{pe}"] = rom
            rd = rom.read_port(domain="sync")
            value = decode(self.inp.payload[pe * ibits:(pe + 1) * ibits], u.input_dtype)
            offset = Signal(range(u.entries), name=f"offset{pe}")
            m.d.comb += offset.eq(value - low)
            address = offset if u.shared else fold * u.entries + offset
            m.d.comb += [rd.addr.eq(address), rd.en.eq(advance)]
            codes.append(rd.data)
        with m.If(advance):
            m.d.sync += v1.eq(self.inp.valid)
        m.d.comb += [self.out.valid.eq(v1), self.out.payload.eq(Cat(*codes))]
        return m

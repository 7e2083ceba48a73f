"""Requantize: an integer-to-integer function between units as arithmetic (multiply, add, shift,
clamp), in one or two affine pieces per channel chosen by a comparison.

    p = 1 if x >= knee[c] else 0
    w = m[c, p] * x + b[c, p]
    q = w >> shift                        (floor)
    q = q - 1  if half_even[c], w's low `shift` bits are 0 and q is odd   (round half to even)
    y = clamp(q, lo[c, p], hi[c, p])

`hwgen.units.piecewise` finds the coefficients from the function as the graph gives it (the
thresholds of a MultiThreshold, the table of a Lookup) and checks them on every input the unit
can see. It replaces, per channel, 255 thresholds of an 8-bit requantization or a 256-entry row
of a table (RPReLU's shift, PReLU, shift; a join's rescaling) by a handful of numbers and one
multiplier (a DSP48 where the product is wide).

`coefficients` (C, 11) int64 holds per channel m0, b0, lo0, hi0, m1, b1, lo1, hi1, knee,
half_even and row. The ROM holds only the fields that differ between channels; the others are
constants in the gateware (a one-piece layer has no knee, rounding the same way throughout no
flag, pieces that share their clamp bounds one pair). A channel whose function no two pieces
reproduce (the model's float rounding can put single values off every line) reads a row of
`table` instead (over every value of the input type; its `row` names it): each lane holds the
rows of its own channels, so a layer with a few such channels keeps a few rows, not a table.

Gateware, five pipeline stages under one stall signal, one beat per clock: (1) take the beat,
read the coefficient ROM (address: channel fold); (2) compare with the knee and pick the piece;
(3) multiply; (4) add the offset; (5) shift, round and clamp into the output register. No stage
holds more than an adder's carry chain or a comparison, for the clocks of the UltraScale+ parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import (
    check_dtype, check_positive, check_values, decode, in_bram, int_array, memory_attrs, memory_bram18, memory_luts,
    wrap_inc,
)
from hwgen.units.piecewise import Piecewise

_WHERE = "Requantize"
#: the columns of `coefficients`; `row`: 0 for arithmetic, r for row r - 1 of `table`
COLUMNS = ("m0", "b0", "lo0", "hi0", "m1", "b1", "lo1", "hi1", "knee", "half_even", "row")


def coefficients_of(form: Piecewise, rows: np.ndarray | None = None) -> np.ndarray:
    """A fitted form as the unit's (C, 11) coefficient array; `rows` (C,): which channels read a
    table row instead (0: none; r: row r - 1)."""
    half_even = form.half_even if form.half_even is not None else np.zeros(form.channels, bool)
    rows = np.zeros(form.channels, np.int64) if rows is None else rows
    return np.stack([form.m[:, 0], form.b[:, 0], form.lo[:, 0], form.hi[:, 0], form.m[:, 1], form.b[:, 1],
                     form.lo[:, 1], form.hi[:, 1], form.knee, half_even.astype(np.int64), rows],
                    axis=1).astype(np.int64)


def _bits(values: np.ndarray) -> int:
    """Two's complement width holding every value."""
    lo, hi = int(values.min(initial=0)), int(values.max(initial=0))
    return max(lo.bit_length() if lo >= 0 else (-lo - 1).bit_length(), hi.bit_length()) + 1


@dataclass(frozen=True, eq=False)
class Requantize(Unit):
    """One or two affine pieces per channel over `pixels` vectors of `channels` channels, `PE` per beat."""

    FOLDING = (("PE", "channels"),)

    channels: int
    PE: int
    pixels: int
    input_dtype: BaseDataType
    output_dtype: BaseDataType
    coefficients: np.ndarray
    shift: int
    table: np.ndarray | None = None
    _form: Piecewise = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_positive(self, ("channels", "PE", "pixels"), _WHERE)
        if self.channels % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide channels={self.channels}", where=_WHERE)
        check_dtype(self.input_dtype, "input_dtype", _WHERE)
        check_dtype(self.output_dtype, "output_dtype", _WHERE)
        if not isinstance(self.shift, (int, np.integer)) or not 0 <= self.shift <= 62:
            raise HwgenError(f"shift must be an integer in [0, 62], not {self.shift!r}", where=_WHERE)
        coef = int_array(self.coefficients, "coefficients", (self.channels, len(COLUMNS)), _WHERE)
        object.__setattr__(self, "coefficients", coef)
        odt = self.output_dtype
        for p in (0, 1):
            lo, hi = coef[:, 2 + 4 * p], coef[:, 3 + 4 * p]
            if lo.min() < odt.min() or hi.max() > odt.max() or np.any(lo > hi):
                raise HwgenError(f"piece {p}'s clamp bounds must lie within output_dtype {odt.name}", where=_WHERE)
        if not np.isin(coef[:, 9], (0, 1)).all():
            raise HwgenError("half_even must be 0 or 1", where=_WHERE)
        rows = 0 if self.table is None else np.asarray(self.table).shape[0]
        if coef[:, 10].min() < 0 or coef[:, 10].max() > rows:
            raise HwgenError(f"row names a table row beyond the {rows} given", where=_WHERE)
        if self.table is not None:
            entries = int(self.input_dtype.max()) - int(self.input_dtype.min()) + 1
            table = int_array(self.table, "table", (rows, entries), _WHERE, odt)
            object.__setattr__(self, "table", table)
        col = {name: coef[:, i] for i, name in enumerate(COLUMNS)}
        form = Piecewise(np.stack([col["m0"], col["m1"]], 1), np.stack([col["b0"], col["b1"]], 1),
                         np.stack([col["lo0"], col["lo1"]], 1), np.stack([col["hi0"], col["hi1"]], 1),
                         col["knee"], int(self.shift), col["half_even"].astype(bool))
        object.__setattr__(self, "_form", form)

    # -- interface

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.input_dtype, self.PE, self.pixels * self.channels // self.PE),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.output_dtype, self.PE, self.pixels * self.channels // self.PE),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        x = check_values(x, self.input_dtype, "Requantize input")
        n = x.shape[0]
        x = x.reshape(n, self.pixels, self.channels)
        y = self._form(x)
        rows = self.coefficients[:, 10]
        if rows.any():
            read = self.table[np.maximum(rows, 1) - 1][np.arange(self.channels), x - int(self.input_dtype.min())]
            y = np.where(rows > 0, read, y)
        return y.reshape(n, -1)

    def component(self) -> wiring.Component:
        return RequantizeComponent(self)

    @property
    def pieces(self) -> int:
        return self._form.pieces

    # -- the datapath's shape

    def fields(self) -> list[tuple[str, int, bool]]:
        """(column, bits, held in the ROM) of each coefficient the datapath uses: a column with
        one value for every channel is a constant, not a ROM field."""
        used = ["m0", "b0", "lo0", "hi0", "half_even"]
        if self.pieces == 2:
            used += ["m1", "b1", "knee"] + [name for name in ("lo1", "hi1") if self.own_clamp(name)]
        out = []
        for name in used:
            values = self.coefficients[:, COLUMNS.index(name)]
            bits = 1 if name == "half_even" else _bits(values)
            out.append((name, bits, bool(np.any(values != values[0]))))
        local = self.lane_rows()
        if local.any():
            out.append(("row", max(1, int(local.max()).bit_length()), True))
        return out

    def lane_rows(self) -> np.ndarray:
        """(C,) each channel's table row among its lane's rows (1-based; 0: arithmetic)."""
        rows = self.coefficients[:, 10]
        local = np.zeros(self.channels, np.int64)
        for pe in range(self.PE):
            mine = rows[pe::self.PE]
            order = {r: i + 1 for i, r in enumerate(sorted(set(mine[mine > 0].tolist())))}
            local[pe::self.PE] = [order.get(r, 0) for r in mine.tolist()]
        return local

    def _lane_tables(self) -> list[np.ndarray]:
        """Per lane, the table rows its channels read (lane-local order)."""
        rows = self.coefficients[:, 10]
        out = []
        for pe in range(self.PE):
            mine = sorted(set(rows[pe::self.PE][rows[pe::self.PE] > 0].tolist()))
            out.append(self.table[np.array(mine, np.int64) - 1] if mine else np.zeros((0, 0), np.int64))
        return out

    def own_clamp(self, name: str) -> bool:
        """Whether the second piece's clamp bound `name` (lo1, hi1) differs from the first's in some
        channel: else both pieces read one."""
        return bool(np.any(self.coefficients[:, COLUMNS.index(name)] != self.coefficients[:, COLUMNS.index(name) - 4]))

    def widths(self) -> tuple[int, int, int]:
        """(product bits, sum bits, quotient bits), signed."""
        ibits = self.input_dtype.bitwidth() + (0 if self.input_dtype.signed() else 1)
        mbits = _bits(self.coefficients[:, [0, 4]])
        product = ibits + mbits
        total = max(product, _bits(self.coefficients[:, [1, 5]])) + 1
        return product, total, max(total - self.shift, 2)

    def _rom_shape(self) -> tuple[int, int]:
        stored = sum(bits for _, bits, rom in self.fields() if rom)
        return self.channels // self.PE, self.PE * stored

    def est_cycles(self) -> int:
        return self.inputs[0].beats_per_frame

    def slope_shift(self) -> int | None:
        """k where every slope is 2^k (the product a shift, no multiplier), else None."""
        slopes = np.unique(self.coefficients[:, [0, 4]] if self.pieces == 2 else self.coefficients[:, 0])
        if slopes.size == 1 and slopes[0] > 0 and int(slopes[0]) & (int(slopes[0]) - 1) == 0:
            return int(slopes[0]).bit_length() - 1
        return None

    def est_dsps(self) -> int:
        """DSP48s per lane for the product where it has 9 bits or more (as MVU): one holds 25 x 18
        signed bits, a wider slope takes more; none where every slope is one power of two (a
        shift)."""
        mbits = _bits(self.coefficients[:, [0, 4]])
        xbits = self.input_dtype.bitwidth() + (0 if self.input_dtype.signed() else 1)
        if self.slope_shift() is not None or xbits + mbits < 9 + 1:
            return 0
        return self.PE * -(-mbits // 25) * -(-xbits // 18)

    def est_luts(self) -> int:
        """Per lane (Yosys, xc7): the quotient's clamp and rounding, about a LUT per quotient bit
        (the offset's adder goes into the DSP with the product); with two pieces, a 2:1 mux per
        bit of the slope and the offset (and of clamp bounds of its own) and the knee's comparison;
        the product in LUTs where no DSP takes it. The ROM: nothing in block RAM but its read mux;
        in LUTs, a LUT6 per 64 words of each bit that is not the same in every word (ROM bits
        equal throughout are constants). ~12 of control."""
        product, total, quotient = self.widths()
        mbits = _bits(self.coefficients[:, [0, 4]])
        lane = quotient + 3
        if self.pieces == 2:
            own = sum(b for n, b, rom in self.fields() if rom and n in ("lo1", "hi1"))
            lane += mbits + _bits(self.coefficients[:, [1, 5]]) + 2 * own + self.input_dtype.bitwidth() // 2
        dsps = self.est_dsps() // self.PE
        if not dsps and self.slope_shift() is None:
            lane += product * max(1, mbits // 2)
        if dsps > 1:  # the partial products of a wide slope meet in an adder in LUTs
            lane += product
        depth, width = self._rom_shape()
        if in_bram(depth, width):
            rom = memory_luts(depth, width)
        else:  # Yosys builds a small ROM from logic: about depth / 16 LUTs per bit that varies (xc7)
            rom = -(-self._rom_varying_bits() * max(depth, 8) // 16)
        tables = sum(memory_luts(d, w) + self.output_dtype.bitwidth() for d, w in self._table_roms())
        return self.PE * lane + rom + tables + 12

    def _rom_varying_bits(self) -> int:
        """Bits of a ROM word that differ between its words (the others are constants)."""
        stored = [(n, b) for n, b, rom in self.fields() if rom]
        varying = 0
        lanes = self.lane_rows() if any(n == "row" for n, _ in stored) else None
        for name, bits in stored:
            column = lanes if name == "row" else self.coefficients[:, COLUMNS.index(name)]
            codes = (column & ((1 << bits) - 1)).reshape(self.channels // self.PE, self.PE)
            for bit in range(bits):
                plane = (codes >> bit) & 1
                varying += int(np.sum(plane.min(axis=0) != plane.max(axis=0)))
        return varying

    def _table_roms(self) -> list[tuple[int, int]]:
        """(depth, width) of each lane's table ROM (none where a lane's channels all compute)."""
        return [(t.size, self.output_dtype.bitwidth()) for t in self._lane_tables() if t.size]

    def est_brams(self) -> int:
        """The coefficient ROM in block RAM (its bits equal in every word are constants, which
        synthesis leaves out) and the lanes' table rows."""
        depth, width = self._rom_shape()
        rom = memory_bram18(depth, self._rom_varying_bits()) if in_bram(depth, width) else 0
        return rom + sum(memory_bram18(d, w) for d, w in self._table_roms())

    def rom_shape(self) -> tuple[int, int]:
        """(depth, width) of the coefficient ROM."""
        return self._rom_shape()

    def parameter_memories(self) -> list[tuple[int, int, str]]:
        depth, width = self._rom_shape()
        return ([(depth, width, "coefficients")] if width else []) + [(d, w, "table") for d, w in self._table_roms()]


class RequantizeComponent(wiring.Component):
    """See the module docstring: five stages under one stall signal; advance = output register
    empty or taken, inp.ready = advance."""

    def __init__(self, unit: Requantize) -> None:
        self.unit = unit
        super().__init__(stream_ports(unit.inputs[0].width, unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        folds, lanes = u.channels // u.PE, u.PE
        ibits, obits = u.input_dtype.bitwidth(), u.output_dtype.bitwidth()
        fields = u.fields()
        stored = [(n, b) for n, b, rom in fields if rom]
        word_bits = sum(b for _, b in stored)
        advance = Signal()
        m.d.comb += [advance.eq(~self.out.valid | self.out.ready), self.inp.ready.eq(advance)]
        fold = Signal(range(folds))
        with m.If(self.inp.valid & advance):
            m.d.sync += fold.eq(wrap_inc(fold, folds))

        # stage 1: the beat, and the ROM word of its channel fold
        rd = None
        columns = {name: u.coefficients[:, COLUMNS.index(name)] for name, _ in stored}
        if "row" in columns:
            columns["row"] = u.lane_rows()  # each lane numbers the rows it holds
        if word_bits:
            words = []
            for f in range(folds):
                word, pos = 0, 0
                for pe in range(lanes):
                    for name, bits in stored:
                        word |= (int(columns[name][f * lanes + pe]) & ((1 << bits) - 1)) << pos
                        pos += bits
                words.append(word)
            m.submodules.coefficients = rom = Memory(
                shape=unsigned(lanes * word_bits), depth=folds, init=words,
                attrs=memory_attrs(folds, lanes * word_bits, rom=True))
            rd = rom.read_port(domain="sync")
            m.d.comb += [rd.addr.eq(fold), rd.en.eq(advance)]
        x1, v1 = Signal(self.inp.payload.shape()), Signal()
        product_bits, total_bits, quotient_bits = u.widths()
        valid = [v1]
        x1_lanes = [decode(x1[pe * ibits:(pe + 1) * ibits], u.input_dtype) for pe in range(lanes)]
        outs = []
        for pe in range(lanes):
            coef = {}
            offset = pe * word_bits
            for name, bits, rom in fields:
                signed_field = name not in ("half_even", "row")
                if rom:
                    raw = rd.data[offset:offset + bits]
                    offset += bits
                    coef[name] = raw.as_signed() if signed_field else raw
                else:
                    value = int(u.coefficients[0, COLUMNS.index(name)])
                    coef[name] = Const(value, signed(bits) if signed_field else unsigned(1))
            for name in ("lo", "hi"):  # a clamp bound both pieces share is read once
                coef.setdefault(f"{name}1", coef[f"{name}0"])
            # stage 2: the piece
            x2 = Signal(signed(ibits + 1), name=f"x2_{pe}")
            sel = {}
            for name in ("m", "b", "lo", "hi"):
                width = max(b for n, b, _ in fields if n.startswith(name) and n[len(name):] in ("0", "1"))
                sel[name] = Signal(signed(width), name=f"{name}2_{pe}")
            even2 = Signal(name=f"even2_{pe}")
            with m.If(advance):
                m.d.sync += [x2.eq(x1_lanes[pe]), even2.eq(coef["half_even"])]
                if u.pieces == 2:
                    upper = x1_lanes[pe] >= coef["knee"]
                    for name in sel:
                        m.d.sync += sel[name].eq(Mux(upper, coef[f"{name}1"], coef[f"{name}0"]))
                else:
                    for name in sel:
                        m.d.sync += sel[name].eq(coef[f"{name}0"])
            # stage 3: the product
            prod3 = Signal(signed(product_bits), name=f"prod3_{pe}")
            b3, lo3, hi3 = (Signal.like(sel[n], name=f"{n}3_{pe}") for n in ("b", "lo", "hi"))
            even3 = Signal(name=f"even3_{pe}")
            product = x2 * sel["m"] if u.slope_shift() is None else x2 << u.slope_shift()
            with m.If(advance):
                m.d.sync += [prod3.eq(product), b3.eq(sel["b"]), lo3.eq(sel["lo"]), hi3.eq(sel["hi"]),
                             even3.eq(even2)]
            # stage 4: the offset
            w4 = Signal(signed(total_bits), name=f"w4_{pe}")
            lo4, hi4 = Signal.like(lo3, name=f"lo4_{pe}"), Signal.like(hi3, name=f"hi4_{pe}")
            even4 = Signal(name=f"even4_{pe}")
            with m.If(advance):
                m.d.sync += [w4.eq(prod3 + b3), lo4.eq(lo3), hi4.eq(hi3), even4.eq(even3)]
            # stage 5: shift, round half to even, clamp
            q = Signal(signed(quotient_bits), name=f"q_{pe}")
            m.d.comb += q.eq(w4 >> u.shift)
            tie = Signal(name=f"tie_{pe}")
            exact = (w4[:u.shift] == 0) if u.shift else Const(1, 1)
            m.d.comb += tie.eq(even4 & exact & q[0])
            below, above = Signal(name=f"below_{pe}"), Signal(name=f"above_{pe}")
            m.d.comb += [below.eq(q <= lo4), above.eq(q > hi4)]
            y = Signal(signed(obits + 1), name=f"y_{pe}")
            m.d.comb += y.eq(Mux(below, lo4, Mux(above, hi4, q - tie)))
            lane_table = u._lane_tables()[pe]
            if lane_table.size:  # this lane's channels without a form read their row
                entries = lane_table.shape[1]
                code_bits = (entries - 1).bit_length()
                flat = (lane_table.reshape(-1) & ((1 << obits) - 1)).tolist()
                table = Memory(shape=unsigned(obits), depth=lane_table.size, init=flat,
                               attrs=memory_attrs(lane_table.size, obits, rom=True))
                m.submodules[f"table{pe}"] = table
                read = table.read_port(domain="sync")
                offset_code = x1_lanes[pe] - int(u.input_dtype.min())  # 0 .. entries - 1
                m.d.comb += [read.addr.eq(Cat(offset_code[:code_bits], coef["row"] - 1)), read.en.eq(advance)]
                use = [Signal(name=f"use{k}_{pe}") for k in (2, 3, 4)]
                data = [Signal(obits, name=f"tab{k}_{pe}") for k in (3, 4)]
                with m.If(advance):
                    m.d.sync += [use[0].eq(coef["row"] != 0), use[1].eq(use[0]), use[2].eq(use[1]),
                                 data[0].eq(read.data), data[1].eq(data[0])]
                outs.append(Mux(use[2], data[1], y[:obits]))
            else:
                outs.append(y[:obits])
        for _ in range(3):
            nxt = Signal()
            with m.If(advance):
                m.d.sync += nxt.eq(valid[-1])
            valid.append(nxt)
        with m.If(advance):
            m.d.sync += [x1.eq(self.inp.payload), v1.eq(self.inp.valid),
                         self.out.valid.eq(valid[-1]), self.out.payload.eq(Cat(*outs))]
        return m

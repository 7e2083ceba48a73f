"""Requantize: an integer-to-integer function between units as arithmetic (multiply, add, shift,
clamp), in one or two affine pieces per channel chosen by a comparison.

    p = 1 if x >= knee[c] else 0
    w = m[c, p] * x + b[c, p]
    q = w >> shift                        (floor)
    q = q - 1  if half_even[c], w's low `shift` bits are 0 and q is odd   (round half to even)
    y = clamp(q, lo[c, p], hi[c, p])
    y = ex_y[c, e]  if x == ex_x[c, e] for an exception e of the channel

`hwgen.units.piecewise` finds the coefficients from the function as the graph gives it (the
thresholds of a MultiThreshold, the table of a Lookup) and checks them on every input the unit
can see. It replaces, per channel, 255 thresholds of an 8-bit requantization or a 256-entry row
of a table (RPReLU's shift, PReLU, shift; a join's rescaling) by a handful of numbers and one
multiplier (a DSP48 where the product is wide).

`coefficients` (C, 11 + 2E) int64 holds per channel m0, b0, lo0, hi0, m1, b1, lo1, hi1, knee,
half_even and row, then E exceptions (input, output): single inputs whose output the line misses,
where the model's float32 rounding put a threshold a value off every line (BatchNorm on a wide
accumulator does, now and then; `piecewise.line_with_exceptions`). The ROM holds only the fields
that differ between channels; the others are constants in the gateware (a one-piece layer has no
knee, rounding the same way throughout no flag, pieces that share their clamp bounds one pair). A
channel whose function no two pieces reproduce reads a row of `table` instead (over every value of
the input type; its `row` names it): each lane holds the rows of its own channels, so a layer with
a few such channels keeps a few rows, not a table.

Gateware, one stall signal over all stages, one beat per clock: (1) take the beat, read the
coefficient ROM (address: channel fold); (2) compare with the knee and pick the piece, compare
with the exceptions; (3) multiply; (4) add the offset; (5) shift, round, clamp (or the exception's
output) into the output register. Where the product fits one DSP and the sum its 48 bits, (4) is
the DSP's post-adder. A wider slope (a narrow slope interval: BatchNorm over a 20-bit
accumulator needs some 2^-33) is cut into 17-bit limbs, a DSP each, and the offset and each limb's
product are added in chunks of at most `ADD_CHUNK_BITS`, one stage per chunk: a few cycles more
latency, the same rate. No stage holds more than a 20-bit carry chain or a comparison, for the
clocks of the UltraScale+ parts.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from functools import reduce

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.streams import from_channel_last, to_channel_last
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import (
    check_dtype, check_groups, check_positive, check_values, decode, in_bram, int_array, memory_attrs, memory_bram18,
    memory_luts, step_channel_fold,
)
from hwgen.units.piecewise import Piecewise

_WHERE = "Requantize"
#: the longest carry chain of one stage of the offset's add where no DSP takes it
ADD_CHUNK_BITS = 20
#: the unsigned limbs of a slope too wide for one DSP: its 18-bit port, less the sign
LIMB_BITS = 17
#: the columns of `coefficients`; `row`: 0 for arithmetic, r for row r - 1 of `table`
COLUMNS = ("m0", "b0", "lo0", "hi0", "m1", "b1", "lo1", "hi1", "knee", "half_even", "row")


def coefficients_of(form: Piecewise, rows: np.ndarray | None = None) -> np.ndarray:
    """A fitted form as the unit's (C, 11 + 2E) coefficient array (`COLUMNS`, then the E
    exceptions' input and output, `exception_columns`); `rows` (C,): which channels read a table
    row instead (0: none; r: row r - 1)."""
    half_even = form.half_even if form.half_even is not None else np.zeros(form.channels, bool)
    rows = np.zeros(form.channels, np.int64) if rows is None else rows
    extra = [a[:, e] for e in range(form.exceptions) for a in (form.except_x, form.except_y)]
    return np.stack([form.m[:, 0], form.b[:, 0], form.lo[:, 0], form.hi[:, 0], form.m[:, 1], form.b[:, 1],
                     form.lo[:, 1], form.hi[:, 1], form.knee, half_even.astype(np.int64), rows, *extra],
                    axis=1).astype(np.int64)


def exception_columns(exceptions: int) -> tuple[str, ...]:
    """The columns after `COLUMNS`: each exception's input and output."""
    return tuple(f"{name}{e}" for e in range(exceptions) for name in ("ex_x", "ex_y"))


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
    #: the order of the stream (`hwgen.streams`, Order): 1, channel-last; channels / PE, channel-major
    channel_groups: int = 1
    _form: Piecewise = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_positive(self, ("channels", "PE", "pixels"), _WHERE)
        check_groups(self, _WHERE)
        if self.channels % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide channels={self.channels}", where=_WHERE)
        check_dtype(self.input_dtype, "input_dtype", _WHERE)
        check_dtype(self.output_dtype, "output_dtype", _WHERE)
        if not isinstance(self.shift, (int, np.integer)) or not 0 <= self.shift <= 62:
            raise HwgenError(f"shift must be an integer in [0, 62], not {self.shift!r}", where=_WHERE)
        given = np.asarray(self.coefficients)
        extra = given.shape[1] - len(COLUMNS) if given.ndim == 2 else -1
        if extra < 0 or extra % 2:
            raise HwgenError(f"coefficients must have {len(COLUMNS)} columns and two per exception, "
                             f"got shape {given.shape}", where=_WHERE)
        coef = int_array(self.coefficients, "coefficients", (self.channels, len(COLUMNS) + extra), _WHERE)
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
        exceptions = extra // 2
        except_x = coef[:, len(COLUMNS)::2] if exceptions else None
        except_y = coef[:, len(COLUMNS) + 1::2] if exceptions else None
        if exceptions and (except_y.min() < odt.min() or except_y.max() > odt.max()):
            raise HwgenError(f"an exception's output must lie within output_dtype {odt.name}", where=_WHERE)
        form = Piecewise(np.stack([col["m0"], col["m1"]], 1), np.stack([col["b0"], col["b1"]], 1),
                         np.stack([col["lo0"], col["lo1"]], 1), np.stack([col["hi0"], col["hi1"]], 1),
                         col["knee"], int(self.shift), col["half_even"].astype(bool), except_x, except_y)
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
        x = to_channel_last(x, self.pixels, self.channels, self.channel_groups)
        y = self._form(x)
        rows = self.coefficients[:, 10]
        if rows.any():
            read = self.table[np.maximum(rows, 1) - 1][np.arange(self.channels), x - int(self.input_dtype.min())]
            y = np.where(rows > 0, read, y)
        return from_channel_last(y, self.channel_groups)

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
        used += list(exception_columns(self.exceptions))
        out = []
        for name in used:
            values = self.column(name)
            bits = 1 if name == "half_even" else _bits(values)
            out.append((name, bits, bool(np.any(values != values[0]))))
        local = self.lane_rows()
        if local.any():
            out.append(("row", max(1, int(local.max()).bit_length()), True))
        return out

    @property
    def exceptions(self) -> int:
        """Single inputs per channel whose output the line misses (`Piecewise.except_x`)."""
        return self._form.exceptions

    def column(self, name: str) -> np.ndarray:
        """The coefficients of column `name` (of `COLUMNS` or `exception_columns`), one per channel."""
        names = COLUMNS + exception_columns(self.exceptions)
        return self.coefficients[:, names.index(name)]

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

    def slope_limbs(self) -> list[tuple[int, int, bool]]:
        """The slope's bits as the DSPs take them: (lowest bit, bits, signed), one limb where the
        product fits one DSP, else unsigned limbs of `LIMB_BITS` (a DSP's 18-bit port) under a
        signed top limb."""
        mbits = _bits(self.coefficients[:, [0, 4]])
        if self.est_dsps() <= self.PE:
            return [(0, mbits, True)]
        limbs = [(low, LIMB_BITS, False) for low in range(0, mbits - 1 - LIMB_BITS + 1, LIMB_BITS)]
        top = len(limbs) * LIMB_BITS
        return limbs + [(top, mbits - top, True)]

    def add_chunks(self) -> list[int]:
        """Bits of each stage of one add of the offset: one stage where a DSP's post-adder takes
        it (the product in one DSP and the sum within its 48 bits), else chunks of at most
        `ADD_CHUNK_BITS` (a carry chain of that length and a LUT is within the levels of logic)."""
        _, total, _ = self.widths()
        if self.est_dsps() <= self.PE and total <= 48:
            return [total]
        return _cuts(total)

    def add_stages(self) -> int:
        """Pipeline stages of the product and the offset (stages 3 and 4)."""
        chunks = self.add_chunks()
        return 2 if len(chunks) == 1 else 1 + len(self.slope_limbs()) * len(chunks)

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
        signed bits; a wider slope takes one per limb of `LIMB_BITS` (`slope_limbs`); none where
        every slope is one power of two (a shift)."""
        mbits = _bits(self.coefficients[:, [0, 4]])
        xbits = self.input_dtype.bitwidth() + (0 if self.input_dtype.signed() else 1)
        if self.slope_shift() is not None or xbits + mbits < 9 + 1:
            return 0
        if mbits <= 25 and xbits <= 18 or mbits <= 18 and xbits <= 25:
            return self.PE
        return self.PE * -(-(mbits - 1) // LIMB_BITS) * -(-xbits // 25)

    def est_luts(self) -> int:
        """Per lane (Yosys, xc7): the quotient's clamp and rounding, about a LUT per quotient bit
        (the offset's adder goes into the DSP with the product); with two pieces, a 2:1 mux per
        bit of the slope and the offset (and of clamp bounds of its own) and the knee's comparison;
        the product in LUTs where no DSP takes it. The ROM: nothing in block RAM but its read mux;
        in LUTs, a LUT6 per 64 words of each bit that is not the same in every word (ROM bits
        equal throughout are constants). ~12 of control. Per exception, its comparison and mux."""
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
        # each exception: the input's equality (a LUT per two or three bits and their AND) and
        # the 2:1 mux of its output
        lane += self.exceptions * (self.input_dtype.bitwidth() // 2 + self.output_dtype.bitwidth() + 2)
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
            column = lanes if name == "row" else self.column(name)
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
    """See the module docstring: stages under one stall signal; advance = output register
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
        st = _Stager(m, advance)
        fold = Signal(range(folds))
        step_channel_fold(m, self.inp.valid & advance, fold, folds, u.pixels, u.channel_groups)

        # stage 1: the beat, and the ROM word of its channel fold
        rd = None
        columns = {name: u.column(name) for name, _ in stored}
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
                    value = int(u.column(name)[0])
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
            # the exceptions: whether the input is one, and its output (carried to stage 5)
            extras = []
            if u.exceptions:
                hits = [x1_lanes[pe] == coef[f"ex_x{e}"] for e in range(u.exceptions)]
                # the entries that match hold one output (an unused entry repeats one): an OR of
                # ANDs, two levels of LUTs whatever the count
                given = Signal(signed(obits), name=f"given_{pe}")
                terms = [Mux(hit, coef[f"ex_y{e}"], 0) for e, hit in enumerate(hits)]
                m.d.comb += given.eq(terms[0] if len(terms) == 1 else reduce(operator.or_, terms))
                extras = [st.reg(Cat(*hits).any(), f"hit2_{pe}"), st.reg(given, f"given2_{pe}")]
            # stage 3: the product; a slope wider than a DSP's port in limbs, a DSP each
            limbs = u.slope_limbs()
            b3, lo3, hi3 = (st.reg(sel[n], f"{n}3_{pe}") for n in ("b", "lo", "hi"))
            even3 = st.reg(even2, f"even3_{pe}")
            extras = [st.reg(v, f"extra3_{i}_{pe}") for i, v in enumerate(extras)]
            if u.slope_shift() is not None:
                products = [st.reg(x2 << u.slope_shift(), f"prod3_{pe}")]
            else:
                products = [st.reg(x2 * (sel["m"][low:low + bits].as_signed() if top else sel["m"][low:low + bits]),
                                   f"prod3_{j}_{pe}") for j, (low, bits, top) in enumerate(limbs)]
            # stage 4: the offset. One stage where a DSP's post-adder takes it; else each limb's
            # product added in turn, in chunks of a short carry chain, one stage per chunk
            if len(u.add_chunks()) == 1:
                w4 = st.reg(products[0] + b3, f"w4_{pe}")
                lo4, hi4, even4 = st.reg(lo3, f"lo4_{pe}"), st.reg(hi3, f"hi4_{pe}"), st.reg(even3, f"even4_{pe}")
                extras = [st.reg(v, f"extra4_{i}_{pe}") for i, v in enumerate(extras)]
            else:
                acc, side = b3, [lo3, hi3, even3, *extras, *products]
                first = 3 + len(extras)
                for j, (low, _, _) in enumerate(limbs):
                    term = side[first + j] << low
                    acc, side = _chunked_add(st, acc, term, total_bits, side, f"w4_{j}_{pe}")
                w4, (lo4, hi4, even4), extras = acc, side[:3], side[3:first]
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
            if extras:  # an exception's own output
                hit, given = extras
                y_line, y = y, Signal(signed(obits + 1), name=f"yx_{pe}")
                m.d.comb += y.eq(Mux(hit, given, y_line))
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
                # the row's value waits beside the arithmetic: stages 2 to 4 (its read is stage 2)
                use = [Signal(name=f"use{k}_{pe}") for k in range(1 + u.add_stages())]
                data = [Signal(obits, name=f"tab{k}_{pe}") for k in range(u.add_stages())]
                with m.If(advance):
                    m.d.sync += [use[0].eq(coef["row"] != 0), data[0].eq(read.data)]
                    m.d.sync += [a.eq(b) for a, b in zip(use[1:], use[:-1])]
                    m.d.sync += [a.eq(b) for a, b in zip(data[1:], data[:-1])]
                outs.append(Mux(use[-1], data[-1], y[:obits]))
            else:
                outs.append(y[:obits])
        for _ in range(1 + u.add_stages()):
            nxt = Signal()
            with m.If(advance):
                m.d.sync += nxt.eq(valid[-1])
            valid.append(nxt)
        with m.If(advance):
            m.d.sync += [x1.eq(self.inp.payload), v1.eq(self.inp.valid),
                         self.out.valid.eq(valid[-1]), self.out.payload.eq(Cat(*outs))]
        return m


class _Stager:
    """Pipeline registers under one stall signal."""

    def __init__(self, m: Module, advance: Signal) -> None:
        self.m, self.advance = m, advance

    def reg(self, value, name: str) -> Signal:
        """A register of `value`, taken when the pipeline advances."""
        out = Signal.like(value, name=name) if isinstance(value, Signal) else Signal(value.shape(), name=name)
        with self.m.If(self.advance):
            self.m.d.sync += out.eq(value)
        return out


def _cuts(total: int) -> list[int]:
    """`total` bits in near-equal chunks of at most `ADD_CHUNK_BITS`."""
    chunks = -(-total // ADD_CHUNK_BITS)
    width = -(-total // chunks)
    return [width] * (chunks - 1) + [total - width * (chunks - 1)]


def _chunked_add(st: _Stager, a, b, total: int, side: list, name: str) -> tuple:
    """a + b (signed, `total` bits) over one stage per chunk of `_cuts(total)`: chunk k added in
    stage k with the carry of chunk k - 1, the chunks still to add and the ones done, and the
    `side` values, carried along in registers. Returns (the sum, the side values as delayed)."""
    a_all, b_all = Signal(signed(total), name=f"{name}_a"), Signal(signed(total), name=f"{name}_b")
    st.m.d.comb += [a_all.eq(a), b_all.eq(b)]
    cuts = _cuts(total)
    done: list = []
    carry = Const(0, 1)
    rest_a, rest_b = a_all, b_all
    for k, width in enumerate(cuts):
        last = k == len(cuts) - 1
        low_a, low_b = (rest_a, rest_b) if last else (rest_a[:width], rest_b[:width])
        part = st.reg((low_a.as_signed() + low_b.as_signed() if last else low_a + low_b) + carry, f"{name}_s{k}")
        done = [st.reg(d, f"{name}_d{k}_{i}") for i, d in enumerate(done)]
        side = [st.reg(v, f"{name}_x{k}_{i}") for i, v in enumerate(side)]
        if last:
            total_sum = Signal(signed(total), name=name)
            st.m.d.comb += total_sum.eq(Cat(*done, part[:width]))
            return total_sum, side
        rest_a, rest_b = st.reg(rest_a[width:], f"{name}_a{k}"), st.reg(rest_b[width:], f"{name}_b{k}")
        carry = part[width]
        done = done + [part[:width]]
    raise AssertionError("unreachable")

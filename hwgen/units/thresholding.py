"""Thresholding: a standalone MultiThreshold on a stream of channel vectors.

Also home of the threshold semantics shared with `MVU` (which thresholds its accumulators):
`multithreshold` (the numpy reference), `check_threshold_params`, `clamp_thresholds` and the one-lane
gateware `threshold_lane`.

Semantics, per channel `c` with thresholds `T[c, 0..T-1]` (ascending):
    count  = sum_t (x >= T[c, t])
    output = 2*count - 1        if output_dtype is BIPOLAR (then T == 1)
             count + out_bias   otherwise (every count in [0, T] must fit output_dtype)

With a BIPOLAR output, out_bias may be given as 0 or as -1 (qonnx's out_scale=2, out_bias=-1 form
of the same function); either way the output is 2*count - 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Cat, Const, Module, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.streams import from_channel_last, to_channel_last
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import (
    THRESHOLD_ROM_BITS_PER_LUT,
    check_dtype,
    check_groups,
    check_positive,
    check_values,
    decode,
    in_bram,
    int_array,
    is_bipolar,
    logic_rom_luts,
    memory_attrs,
    memory_bram18,
    memory_luts,
    pack_words,
    range_bits,
    step_channel_fold,
    tree_sum,
)

# ---- threshold semantics shared with MVU --------------------------------------------------------


def check_threshold_params(
    thresholds: object, rows: int, output_dtype: BaseDataType, out_bias: int, where: str
) -> np.ndarray:
    """Check a (rows, T) threshold matrix against output_dtype/out_bias; return it as int64."""
    arr = np.asarray(thresholds)
    if arr.ndim != 2 or arr.shape[0] != rows or arr.shape[1] < 1:
        raise HwgenError(f"thresholds has shape {arr.shape}, expected ({rows}, T) with T >= 1", where=where)
    arr = int_array(arr, "thresholds", arr.shape, where)
    if np.any(np.diff(arr, axis=1) < 0):
        raise HwgenError("thresholds must be ascending along each row", where=where)
    steps = arr.shape[1]
    if not isinstance(out_bias, (int, np.integer)):
        raise HwgenError(f"out_bias must be an integer, not {out_bias!r}", where=where)
    if is_bipolar(output_dtype):
        if steps != 1:
            raise HwgenError(f"a BIPOLAR output_dtype needs 1 threshold per channel, not {steps}", where=where)
        if out_bias not in (0, -1):
            raise HwgenError(
                f"out_bias must be 0 or -1 with a BIPOLAR output_dtype (the output is 2*count-1), "
                f"not {out_bias}",
                where=where,
            )
    elif out_bias < output_dtype.min() or steps + out_bias > output_dtype.max():
        raise HwgenError(
            f"out_bias {out_bias} with {steps} thresholds gives outputs in [{out_bias}, {steps + out_bias}], "
            f"outside output_dtype {output_dtype.name}",
            where=where,
        )
    return arr


def multithreshold(
    values: np.ndarray, thresholds: np.ndarray, output_dtype: BaseDataType, out_bias: int
) -> np.ndarray:
    """Reference: values (..., C) against thresholds (C, T) -> output values (..., C), int64."""
    count = (np.asarray(values, dtype=np.int64)[..., None] >= thresholds).sum(axis=-1)
    if is_bipolar(output_dtype):
        return 2 * count - 1
    return count + int(out_bias)


def clamp_thresholds(thresholds: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Clamp thresholds for inputs in [lo, hi] to [lo, hi+1]: `lo` means "always", `hi+1` "never",
    so the comparison needs no wider shape than the input's range plus one."""
    return np.clip(thresholds, lo, hi + 1)


def threshold_lane(
    value: Value, thr_word: Value, steps: int, tbits: int, tsigned: bool,
    output_dtype: BaseDataType, out_bias: int,
) -> Value:
    """Gateware for one channel: compare `value` against the `steps` thresholds packed in `thr_word`
    (threshold t at bits [t*tbits, (t+1)*tbits)) and return the wire code of the output."""
    ge = []
    for t in range(steps):
        thr = thr_word[t * tbits : (t + 1) * tbits]
        ge.append(value >= (thr.as_signed() if tsigned else thr))
    count = tree_sum(ge)
    if is_bipolar(output_dtype):
        return count[0]
    obits = output_dtype.bitwidth()
    return (count + Const(out_bias % (1 << obits), obits))[:obits]


def threshold_words(thresholds: np.ndarray, lanes: int, tbits: int) -> list[int]:
    """ROM image: word f holds rows [f*lanes, (f+1)*lanes), row `lane` threshold `t` at bit
    ((lane*T)+t)*tbits, two's complement."""
    rows, steps = thresholds.shape
    codes = np.asarray(thresholds, dtype=np.int64) & ((1 << tbits) - 1)
    return pack_words(codes.reshape(rows // lanes, lanes * steps), tbits)


def threshold_luts(lanes: int, steps: int, cmp_bits: int) -> int:
    """LUT model of `lanes` threshold lanes: a `cmp_bits` comparator per threshold (carry chain,
    ~1 LUT per bit) plus a ~1 LUT per threshold adder tree for the count."""
    return lanes * steps * (cmp_bits + 1)


# ---- the unit ---------------------------------------------------------------------------------

#: from this many thresholds per channel on, the binary search is the cheaper gateware (and a
#: layer's thresholds are not fused into its MVU, whose comparators are all-at-once)
BINARY_SEARCH_MIN_STEPS = 16


@dataclass(frozen=True, eq=False)
class Thresholding(Unit):
    """MultiThreshold over `pixels` vectors of `channels` channels, `PE` channels per beat.

    thresholds: int array (channels, T), ascending per row; values outside the input range are
    allowed (always / never true).

    Two gateware forms of the same function: all T comparisons at once (`binary_search` False:
    T comparators per lane, one pipeline stage), or a binary search over the sorted thresholds
    (`binary_search` True: ceil(log2(T+1)) stages of one comparator per lane, each reading the
    threshold its path has reached from a memory of its own), the form of an 8-bit requantization
    that no arithmetic reproduces (255 thresholds: 8 comparators per lane instead of 255; where
    one or two affine pieces do, `Requantize` takes it instead).
    """

    FOLDING = (("PE", "channels"),)

    channels: int
    PE: int
    input_dtype: BaseDataType
    thresholds: np.ndarray
    output_dtype: BaseDataType
    out_bias: int = 0
    pixels: int = 1
    binary_search: bool = False
    #: the threshold ROM in LUTs where the memory model would put it into block RAM: on a part
    #: short of block RAM, a 512 x 9 ROM takes some 270 LUTs at PE 1, where raising PE until
    #: the ROM is too shallow for block RAM (PE 64) takes 1,200
    thresholds_in_luts: bool = False
    #: the order of the stream (`hwgen.streams`, Order): 1, channel-last; channels / PE, channel-major
    channel_groups: int = 1
    _hw_thresholds: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = "Thresholding"
        check_positive(self, ("channels", "PE", "pixels"), where)
        if self.channels % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide channels={self.channels}", where=where)
        check_groups(self, where)
        check_dtype(self.input_dtype, "input_dtype", where)
        check_dtype(self.output_dtype, "output_dtype", where)
        if self.binary_search and self.thresholds_in_luts:
            raise HwgenError("thresholds_in_luts applies to the all-at-once form, not binary_search", where=where)
        thr = check_threshold_params(self.thresholds, self.channels, self.output_dtype, self.out_bias, where)
        object.__setattr__(self, "thresholds", thr)
        lo, hi = int(self.input_dtype.min()), int(self.input_dtype.max())
        hw = clamp_thresholds(thr, lo, hi)
        hw.setflags(write=False)
        object.__setattr__(self, "_hw_thresholds", hw)

    # -- interface

    @property
    def steps(self) -> int:
        """Thresholds per channel (T)."""
        return self.thresholds.shape[1]

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.input_dtype, self.PE, self.pixels * self.channels // self.PE),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.output_dtype, self.PE, self.pixels * self.channels // self.PE),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        x = check_values(x, self.input_dtype, "Thresholding input")
        x = to_channel_last(x, self.pixels, self.channels, self.channel_groups)
        y = multithreshold(x, self.thresholds, self.output_dtype, self.out_bias)
        return from_channel_last(y, self.channel_groups)

    def component(self) -> wiring.Component:
        return SearchThresholdingComponent(self) if self.binary_search else ThresholdingComponent(self)

    # -- estimates

    def _cmp_bits(self) -> tuple[int, bool]:
        return range_bits(int(self.input_dtype.min()), int(self.input_dtype.max()) + 1)

    def _rom_shape(self, pe: int | None = None) -> tuple[int, int]:
        """(depth, width) of the threshold ROM at this PE (or at `pe`)."""
        pe = self.PE if pe is None else pe
        return self.channels // pe, pe * self.steps * self._cmp_bits()[0]

    def thresholds_in_bram(self) -> bool:
        """Whether the threshold ROM (all-at-once form) is in block RAM."""
        return not self.thresholds_in_luts and in_bram(*self._rom_shape())

    def folding_space(self) -> list[dict[str, int]]:
        """Every PE, and where the threshold ROM would go to block RAM, that PE with the ROM in
        LUTs as well: which is cheaper depends on how much block RAM the design has left."""
        space = []
        for knobs in super().folding_space():
            space.append({**knobs, "thresholds_in_luts": 0})
            if not self.binary_search and in_bram(*self._rom_shape(knobs["PE"])):
                space.append({**knobs, "thresholds_in_luts": 1})
        return space

    def est_cycles(self) -> int:
        return self.inputs[0].beats_per_frame

    @property
    def search_stages(self) -> int:
        """Comparisons per element in the binary search: ceil(log2(T + 1))."""
        return max(1, self.steps.bit_length())

    def _search_roms(self) -> list[tuple[int, int]]:
        """(depth, width) of each lane's ROM per search stage: stage k holds 2^k thresholds per channel."""
        folds, tbits = self.channels // self.PE, self._cmp_bits()[0]
        return [(folds * (1 << k), tbits) for k in range(self.search_stages)]

    def est_luts(self) -> int:
        """All at once: comparators and count adders per lane (`threshold_luts`) and the threshold
        ROM if it is not in block RAM (from logic as Yosys builds it where `thresholds_in_luts`:
        four shapes within the share `tests/test_estimates.py` holds). Binary search: per lane
        and stage a comparator and an address adder (~2 LUTs per bit) and its ROM if not in block
        RAM. ~8 LUTs of control."""
        tbits = self._cmp_bits()[0]
        if self.binary_search:
            roms = sum(memory_luts(d, w) for d, w in self._search_roms())
            return self.PE * (self.search_stages * 2 * tbits + roms) + 8
        shape = self._rom_shape()
        rom = logic_rom_luts(*shape, THRESHOLD_ROM_BITS_PER_LUT) if self.thresholds_in_luts else memory_luts(*shape)
        return threshold_luts(self.PE, self.steps, tbits) + rom + 8

    def parameter_memories(self) -> list[tuple[int, int, str]]:
        if self.binary_search:
            return [(d, w, "thresholds") for d, w in self._search_roms() for _ in range(self.PE)]
        return [(*self._rom_shape(), "thresholds")]

    def est_brams(self) -> int:
        if self.binary_search:
            return self.PE * sum(memory_bram18(d, w) for d, w in self._search_roms())
        return memory_bram18(*self._rom_shape()) if self.thresholds_in_bram() else 0


class ThresholdingComponent(wiring.Component):
    """Two pipeline stages under one stall signal, one beat per clock:

    stage 1: accept a beat into `x1`; the threshold ROM (synchronous read, address = channel fold of
             the beat, enable = advance) delivers the matching word with it;
    stage 2: compare and register the output beat.
    advance = output register empty or taken; inp.ready = advance (a combinational path from
    out.ready to inp.ready).
    """

    def __init__(self, unit: Thresholding) -> None:
        self.unit = unit
        super().__init__(stream_ports(unit.inputs[0].width, unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        folds = u.channels // u.PE
        ibits = u.input_dtype.bitwidth()
        tbits, tsigned = u._cmp_bits()

        m.submodules.thresholds = rom = Memory(
            shape=unsigned(u.PE * u.steps * tbits), depth=folds,
            init=threshold_words(u._hw_thresholds, u.PE, tbits),
            attrs=memory_attrs(*u._rom_shape(), rom=True, in_block=u.thresholds_in_bram()),
        )
        rd = rom.read_port(domain="sync")

        advance = Signal()
        fold = Signal(range(folds))
        x1 = Signal(self.inp.payload.shape())
        v1 = Signal()
        m.d.comb += [
            advance.eq(~self.out.valid | self.out.ready),
            self.inp.ready.eq(advance),
            rd.addr.eq(fold),
            rd.en.eq(advance),
        ]
        step_channel_fold(m, self.inp.valid & advance, fold, folds, u.pixels, u.channel_groups)

        lanes = []
        for pe in range(u.PE):
            value = decode(x1[pe * ibits : (pe + 1) * ibits], u.input_dtype)
            word = rd.data[pe * u.steps * tbits : (pe + 1) * u.steps * tbits]
            lanes.append(threshold_lane(value, word, u.steps, tbits, tsigned, u.output_dtype, u.out_bias))
        with m.If(advance):
            m.d.sync += [
                x1.eq(self.inp.payload),
                v1.eq(self.inp.valid),
                self.out.valid.eq(v1),
                self.out.payload.eq(Cat(*lanes)),
            ]
        return m


class SearchThresholdingComponent(wiring.Component):
    """Binary search over each channel's sorted thresholds, pipelined, one beat per clock.

    The count c = #{t : x >= T[t]} has L = ceil(log2(T+1)) bits (thresholds padded with "never" to
    2^L - 1). Stage k decides bit L-1-k: with the bits above it known (the prefix p), it compares x
    with T[(2p + 1) * 2^(L-1-k) - 1]. Each lane has one ROM per stage, stage k holding the 2^k
    thresholds any prefix of k bits can reach, per channel fold: address = fold * 2^k + p.

    Registers R_0..R_L hold (x, fold, prefix, valid) under one stall signal; stage k's ROM is read
    (synchronously, enable = advance) at the address R_k gives, and its word meets the same beat in
    R_{k+1}, whose comparison adds the next bit. The output is taken from R_L. advance = output
    empty or taken; inp.ready = advance.
    """

    def __init__(self, unit: Thresholding) -> None:
        self.unit = unit
        super().__init__(stream_ports(unit.inputs[0].width, unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        folds = u.channels // u.PE
        ibits = u.input_dtype.bitwidth()
        tbits, tsigned = u._cmp_bits()
        stages = u.search_stages
        never = int(u.input_dtype.max()) + 1
        padded = np.full((u.channels, (1 << stages) - 1), never, np.int64)
        padded[:, : u.steps] = u._hw_thresholds
        advance = Signal()
        m.d.comb += [advance.eq(~self.out.valid | self.out.ready), self.inp.ready.eq(advance)]
        fold_in = Signal(range(folds))
        step_channel_fold(m, self.inp.valid & advance, fold_in, folds, u.pixels, u.channel_groups)
        # pipeline registers: x (all lanes), fold, valid; a prefix per lane
        xs = [Signal(self.inp.payload.shape(), name=f"x{k}") for k in range(stages + 1)]
        fs = [Signal(range(folds), name=f"fold{k}") for k in range(stages + 1)]
        vs = [Signal(name=f"valid{k}") for k in range(stages + 1)]
        prefixes = [[Signal(max(1, k), name=f"prefix{k}_{pe}") for pe in range(u.PE)] for k in range(stages + 1)]
        with m.If(advance):
            m.d.sync += [xs[0].eq(self.inp.payload), fs[0].eq(fold_in), vs[0].eq(self.inp.valid)]
            for k in range(stages):
                m.d.sync += [xs[k + 1].eq(xs[k]), fs[k + 1].eq(fs[k]), vs[k + 1].eq(vs[k])]
        counts = []
        for pe in range(u.PE):
            value = [decode(xs[k][pe * ibits:(pe + 1) * ibits], u.input_dtype) for k in range(stages + 1)]
            effective = Const(0, 1)  # the prefix of stage 0: no bits known yet
            for k in range(stages):
                span = 1 << (stages - 1 - k)
                rows = padded[pe::u.PE]  # (folds, 2^L - 1) for this lane
                picked = rows[:, [(2 * p + 1) * span - 1 for p in range(1 << k)]]  # (folds, 2^k)
                words = pack_words((picked & ((1 << tbits) - 1)).reshape(-1, 1), tbits)
                rom = Memory(shape=unsigned(tbits), depth=folds * (1 << k), init=words,
                             attrs=memory_attrs(folds * (1 << k), tbits, rom=True))
                m.submodules[f"stage{k}_lane{pe}"] = rom
                rd = rom.read_port(domain="sync")
                address = fs[k] * (1 << k) + effective if k else fs[k] * 1
                m.d.comb += [rd.addr.eq(address), rd.en.eq(advance)]
                thr = rd.data.as_signed() if tsigned else rd.data
                bit = value[k + 1] >= thr
                with m.If(advance):
                    m.d.sync += prefixes[k + 1][pe].eq(effective)
                effective = Cat(bit, prefixes[k + 1][pe]) if k else bit
            counts.append(effective)
        lanes = []
        for count in counts:
            if is_bipolar(u.output_dtype):
                lanes.append(count[0])
            else:
                obits = u.output_dtype.bitwidth()
                lanes.append((count + Const(u.out_bias % (1 << obits), obits))[:obits])
        m.d.comb += [self.out.valid.eq(vs[stages]), self.out.payload.eq(Cat(*lanes))]
        return m

"""Helpers shared by the compute units (`MVU`, `Thresholding`, `LabelSelect`).

- which datatypes the units accept (`check_dtype`) and the smallest integer datatype of a value
  range (`smallest_int_dtype`);
- parameter checks for integer arrays (`int_array`) and reference inputs (`check_values`);
- gateware pieces: decoding a wire code to its value (`decode`), balanced adder trees (`tree_sum`),
  bit heaps (`bit_heap_sum`, `popcount`, `bit_heap_luts`), wrapping counters (`wrap_inc`);
- the memory resource model behind every compute unit's `est_brams`/`est_luts` (`in_bram`,
  `memory_bram18`, `memory_luts`) and the synthesis attributes that make the tools agree with it
  (`memory_attrs`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from qonnx.core.datatype import BaseDataType, DataType

from hwgen.errors import HwgenError
from hwgen.streams import pack_beats

_INT_NAME = re.compile(r"^(BINARY|BIPOLAR|TERNARY|U?INT\d+)$")


def check_dtype(dtype: object, name: str, where: str) -> BaseDataType:
    """Return `dtype` if it is BINARY, BIPOLAR, TERNARY, INTn or UINTn, else raise naming parameter `name`."""
    if not isinstance(dtype, BaseDataType) or not _INT_NAME.match(dtype.name):
        shown = getattr(dtype, "name", repr(dtype))
        raise HwgenError(f"{name} must be BINARY, BIPOLAR, TERNARY, INTn or UINTn, not {shown}", where=where)
    return dtype


def check_positive(unit: object, names: tuple[str, ...], where: str) -> None:
    """Raise naming the first of the `names` attributes of `unit` that is not an integer >= 1."""
    for name in names:
        value = getattr(unit, name)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise HwgenError(f"{name} must be a positive integer, not {value!r}", where=where)


def check_int(value: object, name: str, minimum: int = 1, where: str | None = None) -> None:
    """Raise `HwgenError` naming `name` unless `value` is an integer (not a bool) >= `minimum`."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise HwgenError(f"{name} must be an integer >= {minimum}, got {value!r}", where=where or name)


def is_bipolar(dtype: BaseDataType) -> bool:
    return dtype == DataType["BIPOLAR"]


def is_binary(dtype: BaseDataType) -> bool:
    return dtype == DataType["BINARY"]


def is_ternary(dtype: BaseDataType) -> bool:
    """{-1, 0, +1} in two bits (two's complement): a BIPOLAR stream padded with real zeros."""
    return dtype == DataType["TERNARY"]


def smallest_int_dtype(lo: int, hi: int) -> BaseDataType:
    """The narrowest BINARY/UINTn (if `lo >= 0`) or INTn holding every integer in `[lo, hi]`."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    if lo >= 0:
        return DataType["BINARY"] if hi <= 1 else DataType[f"UINT{hi.bit_length()}"]
    bits = max((-lo - 1).bit_length(), hi.bit_length() if hi > 0 else 0) + 1
    return DataType[f"INT{bits}"]


def range_bits(lo: int, hi: int) -> tuple[int, bool]:
    """Width and signedness of the narrowest two's-complement/unsigned shape holding `[lo, hi]`."""
    return smallest_int_dtype(lo, hi).bitwidth(), lo < 0


def int_array(
    values: object, name: str, shape: tuple[int, ...], where: str, dtype: BaseDataType | None = None
) -> np.ndarray:
    """Check that `values` is an integer-valued array of `shape` (and of `dtype`'s values if given);
    return it as a read-only int64 array."""
    try:
        arr = np.array(values)
    except Exception as exc:  # numpy raises several types for ragged or odd input
        raise HwgenError(f"{name} is not an array: {exc}", where=where) from None
    if arr.shape != shape:
        raise HwgenError(f"{name} has shape {arr.shape}, expected {shape}", where=where)
    if arr.dtype.kind not in "biuf":
        raise HwgenError(f"{name} must hold integers, not {arr.dtype}", where=where)
    if arr.dtype.kind == "f" and not (np.all(np.isfinite(arr)) and np.all(np.mod(arr, 1) == 0)):
        raise HwgenError(f"{name} must hold integer values", where=where)
    arr = arr.astype(np.int64)
    if dtype is not None and arr.size:
        if arr.min() < dtype.min() or arr.max() > dtype.max():
            raise HwgenError(
                f"{name} values lie in [{arr.min()}, {arr.max()}], outside {dtype.name} "
                f"[{int(dtype.min())}, {int(dtype.max())}]",
                where=where,
            )
        if is_bipolar(dtype) and np.any(arr == 0):
            raise HwgenError(f"{name} holds 0, which is not a BIPOLAR value", where=where)
    arr.setflags(write=False)
    return arr


def check_values(values: np.ndarray, dtype: BaseDataType, what: str) -> np.ndarray:
    """Reference-model input check: integer values of `dtype`, returned as int64."""
    v = np.asarray(values)
    if not np.all(np.equal(np.mod(v, 1), 0)):
        raise HwgenError(f"{what} values are not integers")
    v = v.astype(np.int64)
    if v.size and (
        v.min() < dtype.min() or v.max() > dtype.max() or (is_bipolar(dtype) and np.any(v == 0))
    ):
        raise HwgenError(f"{what} values do not all belong to {dtype.name}")
    return v


def pack_words(codes: np.ndarray, bits: int) -> list[int]:
    """Memory image: row r of `codes` (words, elements) as one integer, element i at bits
    [i*bits, (i+1)*bits) (the stream packing of `hwgen.streams`, used for ROM words too)."""
    codes = np.asarray(codes)
    if codes.shape[0] == 0:
        return []
    beats = pack_beats(codes.astype(np.uint64), bits, codes.shape[1])[:, 0, :]
    return [int.from_bytes(row.tobytes(), "little") for row in beats]


# ---- gateware helpers -------------------------------------------------------------------------


def decode(code: Value, dtype: BaseDataType) -> Value:
    """The value of one wire-coded element (see `hwgen.streams`) as a signed/unsigned Amaranth value."""
    if is_bipolar(dtype):
        return Mux(code[0], Const(1, signed(2)), Const(-1, signed(2)))
    if dtype.signed():
        return code.as_signed()
    return code.as_unsigned()


def tree_sum(values: list[Value]) -> Value:
    """Sum of `values` as a balanced adder tree (depth log2(n), each level one bit wider)."""
    if not values:
        return Const(0, 1)
    level = list(values)
    while len(level) > 1:
        nxt = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


#: bits one counter of a bit heap adds up past its first level: six, what one LUT6 per output bit takes
COUNTER_INPUTS = 6
#: bits one counter of a bit heap's first level adds up: its inputs are functions of two signals
#: each (an XNOR of input and weight, an AND of a pixel bit and a +1 weight), so three of them are
#: the six inputs of one LUT6 per output bit: the XNORs or ANDs cost no LUTs of their own
FIRST_COUNTER_INPUTS = 3
#: adder levels of a tree sum between two pipeline registers: a level is two or three levels of
#: logic (LUTs and carry cells), so a stage stays within the eight or so that close timing at 200
#: MHz on UltraScale+ (see `hwgen.synth` `logic_levels`); a bit heap registers every counter level
LEVELS_PER_STAGE = 2

#: a pipeline register: takes a value, returns the register holding it (under the unit's enable)
Register = Callable[[Value], Value]


def _counter_sizes(bits: int, size: int) -> list[int]:
    """How one level of a bit heap cuts a column of `bits` bits into counters of at most `size`
    bits (at least three: a counter of two would not reduce the heap); the rest stays."""
    sizes = []
    while bits - sum(sizes) >= 3:
        sizes.append(min(size, bits - sum(sizes)))
    return sizes


def heap_plan(column_bits: list[int]) -> tuple[list[list[list[int]]], list[int]]:
    """How `bit_heap_sum` reduces columns of these sizes (column k weighing 2**k): for every level,
    the sizes of each column's counters, and the column sizes left for the final adder (two bits
    at most each). The LUT model replays the same plan that the hardware is built from."""
    sizes, levels = list(column_bits), []
    while max(sizes, default=0) > 2:
        size = FIRST_COUNTER_INPUTS if not levels else COUNTER_INPUTS
        cut = [_counter_sizes(bits, size) for bits in sizes]
        reduced = [0] * (len(sizes) + size.bit_length())
        for weight, (bits, counters) in enumerate(zip(sizes, cut)):
            for group in counters:
                for k in range(group.bit_length()):
                    reduced[weight + k] += 1
            reduced[weight] += bits - sum(counters)
        while not reduced[-1]:
            reduced.pop()
        levels.append(cut)
        sizes = reduced
    return levels, sizes


def bit_heap_luts(column_bits: list[int]) -> int:
    """LUTs of `bit_heap_sum` on columns of these sizes (its `heap_plan`): a LUT per output bit of
    a counter, one more per first-level counter (Yosys maps a counter of three XNORs as one LUT2
    for the first and a LUT5 per output bit, which Vivado packs in pairs), and a LUT per bit of the
    final adder. Within 7 % of Yosys on lanes of 36 to 288 bits."""
    levels, final = heap_plan(column_bits)
    counters = sum(group.bit_length() + (level == 0)
                   for level, cut in enumerate(levels) for column in cut for group in column)
    return counters + len(final)


def _counter(m: Module, group: list[Value], name: str) -> Signal:
    """The number of ones among `group`, each output bit a truth table of the group's bits, so
    that Yosys maps it to one LUT per output bit (a `+` of single bits becomes a carry chain, and
    the counter's first-level XNORs then LUTs of their own)."""
    count = Signal(len(group).bit_length(), name=name)
    index = Cat(*group)
    for k in range(len(count)):
        table = sum(((bin(i).count("1") >> k) & 1) << i for i in range(1 << len(group)))
        m.d.comb += count[k].eq(Const(table, 1 << len(group)).bit_select(index, 1))
    return count


def bit_heap_sum(m: Module, columns: list[list[Value]], name: str = "heap",
                 register: Register | None = None) -> tuple[Value, int]:
    """The sum of single bits, column k weighing 2**k, as a bit heap reduced by counters
    (Dadda/Wallace style): every column's bits are taken a few at a time by a counter whose sum
    goes to this column and the next ones, until no column holds more than two bits; one adder
    then adds the two rows. The first level's counters take `FIRST_COUNTER_INPUTS` bits (each
    bit a function of two signals), the later ones `COUNTER_INPUTS`. A balanced tree of adders
    spends an adder bit per input bit at every level it keeps a carry; a counter removes a bit
    per LUT. Measured with Yosys `synth_xilinx` on one 288-bit XNOR-popcount lane: 529 LUTs with
    six-input counters as additions and a register every two levels, 493 with three-input first
    counters as truth tables and a register after every level (the registers keep the mapper
    from merging levels into larger, deeper logic; flip-flops are what the part has most of).
    Each counter is a signal of `m` (named `name` and a number). Returns the sum and the number of
    registers on its way (the same for every heap of one shape)."""
    columns = [list(col) for col in columns]
    if not columns:
        return Const(0, 1), 0
    levels, _ = heap_plan([len(col) for col in columns])
    counters = stages = 0
    for level, cut in enumerate(levels):
        reduced: list[list[Value]] = [[] for _ in range(len(columns) + COUNTER_INPUTS.bit_length())]
        for weight, (col, sizes) in enumerate(zip(columns, cut)):
            i = 0
            for bits in sizes:
                count = _counter(m, col[i:i + bits], f"{name}{counters}")
                i, counters = i + bits, counters + 1
                for k in range(len(count)):
                    reduced[weight + k].append(count[k])
            reduced[weight].extend(col[i:])
        while not reduced[-1]:
            reduced.pop()
        columns = reduced
        if register is not None and level < len(levels) - 1:
            flat = register(Cat(*[b for col in columns for b in col]))
            at = 0
            for col in columns:
                col[:] = [flat[at + j] for j in range(len(col))]
                at += len(col)
            stages += 1
    rows = [Cat(*[col[r] if len(col) > r else Const(0, 1) for col in columns]) for r in range(2)]
    return rows[0] + rows[1], stages


def popcount(m: Module, bits: Value, name: str = "pc", register: Register | None = None) -> tuple[Value, int]:
    """The number of ones in `bits` (`bit_heap_sum` of one column). Returns the count and the
    number of registers on its way."""
    if len(bits) <= 2:
        return tree_sum([bits[i] for i in range(len(bits))]), 0
    return bit_heap_sum(m, [[bits[i] for i in range(len(bits))]], name, register)


def staged_tree_sum(values: list[Value], register: Register) -> tuple[Value, int]:
    """`tree_sum` with a register every `LEVELS_PER_STAGE` adder levels (not after the last);
    returns the sum and the number of registers on its way."""
    level, levels, stages = list(values), 0, 0
    if not level:
        return Const(0, 1), 0
    while len(level) > 1:
        nxt = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level, levels = nxt, levels + 1
        if levels % LEVELS_PER_STAGE == 0 and len(level) > 1:
            level = [register(v) for v in level]
            stages += 1
    return level[0], stages


def wrap_inc(counter: Value, modulus: int) -> Value:
    """`counter + 1`, wrapping to 0 at `modulus`."""
    if modulus == 1:
        return Const(0, 1)
    return Mux(counter == modulus - 1, 0, counter + 1)


def step_channel_fold(m: Module, take: Value, fold: Signal, folds: int, pixels: int, groups: int = 1) -> None:
    """Step `fold`, the channel fold (the word of per-channel parameters) of the next beat of a
    stream of `folds` beats a pixel in `groups` channel groups (`hwgen.streams`, Order), on
    `take`: fold after fold in one group; in several, the group's folds for every pixel in turn,
    then the next group's."""
    if groups == 1:
        with m.If(take):
            m.d.sync += fold.eq(wrap_inc(fold, folds))
        return
    inner = folds // groups
    within, pixel, first = Signal(range(inner)), Signal(range(pixels)), Signal(range(folds))
    with m.If(take):
        m.d.sync += [within.eq(wrap_inc(within, inner)), fold.eq(fold + 1)]
        with m.If(within == inner - 1):  # the pixel's folds of the group done
            m.d.sync += [pixel.eq(wrap_inc(pixel, pixels)), fold.eq(first)]
            with m.If(pixel == pixels - 1):  # the group done
                following = Mux(first == folds - inner, 0, first + inner)
                m.d.sync += [first.eq(following), fold.eq(following)]


def grouped_offset(m: Module, step: Value, pixels: int, folds: int, groups: int, name: str = "offset"
                   ) -> tuple[Signal, Value]:
    """Where the next beat of a frame of `pixels` pixels, `folds` beats a pixel, in `groups`
    channel groups (`hwgen.streams`, Order) goes in the frame laid out channel-last: the word
    pixel x folds + fold, stepped on `step`; and whether it is the frame's last beat. One group:
    a count. Several: the group's folds of a pixel follow each other, the next pixel is folds
    on, the next group starts at its first fold."""
    words = pixels * folds
    offset = Signal(range(words), name=name)
    if groups == 1:
        with m.If(step):
            m.d.sync += offset.eq(wrap_inc(offset, words))
        return offset, offset == words - 1
    inner = folds // groups
    within, pixel, first = Signal(range(inner)), Signal(range(pixels)), Signal(range(folds))
    with m.If(step):
        m.d.sync += [within.eq(wrap_inc(within, inner)), offset.eq(offset + 1)]
        with m.If(within == inner - 1):  # the next pixel of the group
            m.d.sync += [pixel.eq(wrap_inc(pixel, pixels)), offset.eq(offset + folds - inner + 1)]
            with m.If(pixel == pixels - 1):  # the next group
                following = Mux(first == folds - inner, 0, first + inner)
                m.d.sync += [first.eq(following), offset.eq(following)]
    return offset, (pixel == pixels - 1) & (within == inner - 1) & (first == folds - inner)


def check_groups(unit: object, where: str) -> None:
    """`channel_groups` a positive divisor of the unit's channel folds (channels / PE)."""
    groups, folds = getattr(unit, "channel_groups"), getattr(unit, "channels") // getattr(unit, "PE")
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1 or folds % groups:
        raise HwgenError(f"channel_groups={groups!r} must divide the channel folds ({folds})", where=where)


# ---- memory resource model --------------------------------------------------------------------

#: Aspect ratios (depth, width) of one 18 Kb block RAM (7-series/UltraScale RAMB18).
BRAM18_ASPECTS = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
#: Memories of fewer bits than this are left to LUTRAM (distributed RAM / LUT ROM).
LUTRAM_MAX_BITS = 4096
#: Memories shallower than this are built from LUTs/flip-flops: a BRAM would waste >96% of its depth.
LUTRAM_MIN_DEPTH = 16


def in_bram(depth: int, width: int) -> bool:
    """Whether the resource model puts a `depth` x `width` memory into block RAM."""
    return depth * width >= LUTRAM_MAX_BITS and depth >= LUTRAM_MIN_DEPTH


def memory_bram18(depth: int, width: int) -> int:
    """18 Kb block RAMs for a `depth` x `width` memory: 0 if it goes to LUTRAM (see `in_bram`), else
    the fewest over the RAMB18 aspect ratios 16Kx1, 8Kx2, 4Kx4, 2Kx9, 1Kx18 and 512x36."""
    if depth <= 0 or width <= 0 or not in_bram(depth, width):
        return 0
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM18_ASPECTS)


#: one UltraRAM (URAM288 of UltraScale+): 4K words of 72 bits
URAM_DEPTH, URAM_WIDTH = 4096, 72


def uram_count(depth: int, width: int) -> int:
    """UltraRAMs for a `depth` x `width` memory."""
    return math.ceil(depth / URAM_DEPTH) * math.ceil(width / URAM_WIDTH)


#: words of one block RAM bank of a deep memory (Yosys cascades RAMB36s up to 8K words)
BRAM_BANK_WORDS = 8192


def memory_luts(depth: int, width: int, in_block: bool | None = None) -> int:
    """LUTs of a memory: out of block RAM, one LUT6 per 64 words of one bit and the read mux
    across those (a LUT6 per four per bit); in block RAM, none but, deeper than one bank
    (`BRAM_BANK_WORDS`), the read mux across banks (likewise). `in_block`: where it is, if not
    where `in_bram` puts it."""
    if depth <= 0 or width <= 0:
        return 0
    block = in_bram(depth, width) if in_block is None else in_block
    banks, per_bank = (math.ceil(depth / BRAM_BANK_WORDS), 0) if block else (math.ceil(depth / 64), 1)
    return width * (per_bank * banks + (math.ceil(banks / 4) if banks > 1 else 0))


#: RAMB36 shapes (words, bits), each two 18 Kb blocks
BRAM36_ASPECTS = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72))
#: 18 Kb blocks Yosys gives up for a LUT of read mux, as its choices of shape show
BRAM18_PER_MUX_LUT = 0.005


def _mux_luts_per_bit(banks: int) -> float:
    """LUTs a bit of a read mux across `banks` block RAMs, with the write decode, by Yosys: up to
    16 as measured; deeper, a tree of 4:1 muxes (a LUT6 each) and the decode (a frame of 25 banks:
    11.5, Yosys 11.8)."""
    if banks <= 16:
        return 0 if banks <= 1 else 1.5 if banks == 2 else 4 if banks <= 7 else 5.5
    tree = 0
    while banks > 1:
        banks = -(-banks // 4)
        tree += banks
    return tree + 1.5


def bram_read_mux_luts(depth: int, width: int) -> int:
    """LUTs of the read mux (and write decode) of a RAM in block RAM as Yosys builds it. Yosys
    chooses the shape: one shape throughout, or (at most 1K words deep) one shape and a shallower
    one for the words left over, weighing the 18 Kb blocks against the mux's LUTs
    (`BRAM18_PER_MUX_LUT`). Against Yosys: 6,272 x 144 bits 576 LUTs (Yosys 784, 13 blocks
    deep), 3,136 x 192 768 (768), 6,272 x 72 288 (387), 12,544 x 44 176 (248), 3,528 x 128 and
    784 x 64 none (none: one block deep). None out of block RAM."""
    if depth <= 0 or width <= 0 or not in_bram(depth, width):
        return 0
    shapes = [(d, w, 1) for d, w in BRAM18_ASPECTS] + [(d, w, 2) for d, w in BRAM36_ASPECTS]
    options = []  # (18 Kb blocks, banks deep)
    for d, w, blocks in shapes:
        full, left = divmod(depth, d)
        options.append((math.ceil(depth / d) * math.ceil(width / w) * blocks, math.ceil(depth / d)))
        if full and left and d <= 1024:
            options += [(full * math.ceil(width / w) * blocks + math.ceil(left / d2) * math.ceil(width / w2) * b2,
                         full + math.ceil(left / d2)) for d2, w2, b2 in shapes if d2 < d]
    _, banks = min(options, key=lambda o: o[0] + BRAM18_PER_MUX_LUT * width * _mux_luts_per_bit(o[1]))
    return round(width * _mux_luts_per_bit(banks))


#: bits of a random-content ROM per LUT when Yosys builds it from logic (its abc maps the
#: address decode as a general function, not a LUT6 per 64 words): MVU weight ROMs of 128 to
#: 2,048 bits and 64 words or more take 1/10 to 1/15 of a LUT per bit under `synth_xilinx`
LOGIC_ROM_BITS_PER_LUT = 12


#: the same for threshold ROMs (a channel's thresholds sorted, their top bits alike): 512 x 9
#: bits 254 LUTs, 128 x 27 176 by Yosys
THRESHOLD_ROM_BITS_PER_LUT = 18


def logic_rom_luts(depth: int, width: int, bits_per_lut: int = LOGIC_ROM_BITS_PER_LUT) -> int:
    """LUTs of a ROM of random content (weights) out of block RAM, as Yosys maps it: up to 32
    words a LUT per bit (`memory_luts`); deeper, a LUT per `bits_per_lut` bits. Vivado gets
    nearer a LUT6 per 64 words; the estimates follow Yosys, which the resource numbers here come
    from."""
    if depth <= 32:
        return memory_luts(depth, width, in_block=False)
    return max(memory_luts(depth, width, in_block=False), math.ceil(depth * width / bits_per_lut))


def ram_luts(depth: int, width: int) -> int:
    """LUTs of a RAM (one write port, one read port) in LUT RAM, as Yosys maps it: RAM32M (4
    LUTs) per 6 bits of 32 words; deeper, RAM64M (4 LUTs) per 3 bits of 64 words, and a read mux
    across the 64-word banks (a LUT6 per four banks per bit). Whether a RAM goes there is the
    caller's (`in_bram`, or a FIFO's own rule)."""
    if depth <= 0 or width <= 0:
        return 0
    if depth <= 32:
        return 4 * math.ceil(width / 6)
    banks = math.ceil(depth / 64)
    return 4 * math.ceil(width / 3) * banks + (width * math.ceil(banks / 4) if banks > 1 else 0)


def memory_attrs(depth: int, width: int, *, rom: bool, in_block: bool | None = None) -> dict[str, str]:
    """Synthesis attributes that make Yosys/Vivado place a memory where the resource model counts
    it (`in_bram`). Without `rom_style = "block"` Yosys's `synth_xilinx` prices a ROM as logic and
    never picks BRAM; a small ROM gets no attribute (Yosys refuses `rom_style = "distributed"` on a
    ROM with a synchronous read port, and builds it from LUTs anyway). `in_block`: where the
    memory goes, if not where `in_bram` puts it."""
    if in_bram(depth, width) if in_block is None else in_block:
        return {"rom_style" if rom else "ram_style": "block"}
    return {} if rom else {"ram_style": "distributed"}

"""MVU: the matrix-vector unit, one per fully-connected layer (and behind a sliding window for a
convolution, where one frame holds `vectors_per_frame` vectors).

Semantics, per input vector x (MW values) and weights W (MW, MH):

- XNOR mode (input_dtype and weight_dtype both BINARY): acc[n] = #{i : x[i] == W[i, n]}
  (qonnx `XnorPopcountMatMul`);
- otherwise acc = x @ W, BIPOLAR values read as -1/+1;
- without thresholds the output is acc (`output_dtype` must hold its range, see `accumulator_dtype`);
  with thresholds (MH, T) the output is the MultiThreshold of acc (see `hwgen.units.thresholding`).

Weights: an initialised ROM by default; with `weights_loaded` a RAM without contents that the
weight stream fills after reset (`hwgen.units.weight_stream`; the unit computes nothing until
then), in UltraRAM with `weights_in_uram` (which has no contents in the bitstream). Block RAM or
LUTs by the memory model's rule (`datapath.in_bram`), or LUTs with `weights_in_luts` whatever
its shape: a shallow, wide ROM (a few words of thousands of bits) fills a BRAM per 36 bits of
width and leaves 95 % of its depth empty, where LUTs hold it at a LUT per bit; folding chooses
per layer (`SetFolding`).

Folding: the vector arrives as SF = MW/SIMD beats of SIMD elements, the result leaves as NF = MH/PE
beats of PE elements (output neuron n = nf*PE + pe); one (nf, sf) step per clock, so a vector takes
NF*SF cycles. With NF > 1 the input goes through a ping-pong buffer of two vectors: the next vector
is taken while the current one is computed, at whatever rate it comes, so that the unit never makes
its producer wait for more than its own NF*SF cycles per vector.
"""

from __future__ import annotations

import copy
import math

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In
from amaranth.lib.memory import Memory
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import (
    check_dtype,
    check_positive,
    check_values,
    decode,
    in_bram,
    int_array,
    is_binary,
    is_bipolar,
    is_ternary,
    memory_attrs,
    memory_bram18,
    logic_rom_luts,
    memory_luts,
    bit_heap_luts,
    pack_words,
    uram_count,
    ram_luts,
    range_bits,
    smallest_int_dtype,
    popcount,
    staged_tree_sum,
    wrap_inc,
)
from hwgen.units.weight_stream import WEIGHT_BEAT_BITS, beats_per_word, load_memory, stream_beats
from hwgen.units.thresholding import (
    check_threshold_params,
    clamp_thresholds,
    multithreshold,
    threshold_lane,
    threshold_luts,
    threshold_words,
)

# ---- accumulator range ------------------------------------------------------------------------


def _value_range(dtype: BaseDataType) -> tuple[int, int]:
    return int(dtype.min()), int(dtype.max())


def is_xnor(input_dtype: BaseDataType, weight_dtype: BaseDataType) -> bool:
    """XNOR-popcount semantics: both operands BINARY."""
    return is_binary(input_dtype) and is_binary(weight_dtype)


def accumulator_bounds(
    input_dtype: BaseDataType, weight_dtype: BaseDataType, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (min, max) of each column's accumulator over all inputs of `input_dtype`, weights
    (MW, MH): the values a requantization after the layer can see. XNOR mode: [0, MW]."""
    w = np.asarray(weights, dtype=np.int64)
    mw, mh = w.shape
    if is_xnor(input_dtype, weight_dtype):
        return np.zeros(mh, np.int64), np.full(mh, mw, np.int64)
    xlo, xhi = _value_range(input_dtype)
    # x*w is least at x = xlo where w > 0 and at x = xhi where w < 0 (xlo <= xhi), most the other way
    pos, neg = np.maximum(w, 0).sum(axis=0), np.minimum(w, 0).sum(axis=0)
    return xlo * pos + xhi * neg, xhi * pos + xlo * neg


def accumulator_range(
    input_dtype: BaseDataType, weight_dtype: BaseDataType, weights: np.ndarray
) -> tuple[int, int]:
    """Exact (min, max) of the accumulator over all inputs of `input_dtype`, worst column of
    `weights` (MW, MH). XNOR mode: [0, MW]."""
    lo, hi = accumulator_bounds(input_dtype, weight_dtype, weights)
    return int(lo.min()), int(hi.max())


def accumulator_dtype(
    input_dtype: BaseDataType, weight_dtype: BaseDataType, weights: np.ndarray
) -> BaseDataType:
    """The smallest BINARY/UINTn/INTn holding the exact accumulator range (`accumulator_range`):
    the `output_dtype` for an MVU without thresholds."""
    return smallest_int_dtype(*accumulator_range(input_dtype, weight_dtype, weights))


def mvu_reference(
    x: np.ndarray, weights: np.ndarray, input_dtype: BaseDataType, weight_dtype: BaseDataType
) -> np.ndarray:
    """Accumulators of vectors x (..., MW) against weights (MW, MH), on values, int64."""
    x = np.asarray(x, dtype=np.int64)
    if is_xnor(input_dtype, weight_dtype):
        return (x[..., :, None] == weights).sum(axis=-2)
    return x @ weights


# ---- the unit ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MVU(Unit):
    """Matrix-vector unit: out = threshold(x @ W) per vector, PE x SIMD folded."""

    FOLDING = (("PE", "MH"), ("SIMD", "MW"))

    MW: int
    MH: int
    PE: int
    SIMD: int
    input_dtype: BaseDataType
    weight_dtype: BaseDataType
    weights: np.ndarray
    thresholds: np.ndarray | None
    output_dtype: BaseDataType
    out_bias: int = 0
    vectors_per_frame: int = 1
    weights_loaded: bool = False
    weights_in_uram: bool = False
    weights_in_luts: bool = False
    products_in_luts: bool = False
    packed_products: bool = False
    _hw: _HwParams = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = "MVU"
        check_positive(self, ("MW", "MH", "PE", "SIMD", "vectors_per_frame"), where)
        if self.MH % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide MH={self.MH}", where=where)
        if self.MW % self.SIMD:
            raise HwgenError(f"SIMD={self.SIMD} does not divide MW={self.MW}", where=where)
        check_dtype(self.input_dtype, "input_dtype", where)
        check_dtype(self.weight_dtype, "weight_dtype", where)
        check_dtype(self.output_dtype, "output_dtype", where)
        w = int_array(self.weights, "weights", (self.MW, self.MH), where, self.weight_dtype)
        object.__setattr__(self, "weights", w)
        if not isinstance(self.out_bias, (int, np.integer)):
            raise HwgenError(f"out_bias must be an integer, not {self.out_bias!r}", where=where)
        acc_lo, acc_hi = accumulator_range(self.input_dtype, self.weight_dtype, w)
        if self.thresholds is None:
            odt = self.output_dtype
            if is_bipolar(odt) or acc_lo < odt.min() or acc_hi > odt.max():
                raise HwgenError(
                    f"output_dtype {odt.name} cannot hold the accumulator range [{acc_lo}, {acc_hi}] "
                    f"(use {accumulator_dtype(self.input_dtype, self.weight_dtype, w).name}, or thresholds)",
                    where=where,
                )
            if self.out_bias != 0:
                raise HwgenError("out_bias applies only with thresholds; it must be 0 without", where=where)
        else:
            thr = check_threshold_params(self.thresholds, self.MH, self.output_dtype, self.out_bias, where)
            object.__setattr__(self, "thresholds", thr)
        if self.weights_in_uram and self.weights_in_luts:
            raise HwgenError("weights_in_uram and weights_in_luts exclude each other", where=where)
        if self.weights_in_uram and not self.weights_loaded:
            raise HwgenError("weights in UltraRAM must be loaded (weights_loaded): URAM has no "
                             "contents in the bitstream", where=where)
        object.__setattr__(self, "_hw", _HwParams.of(self, acc_lo, acc_hi))
        if self.products_in_luts and not self.dsp_products():
            raise HwgenError("products_in_luts applies to products of two multi-bit operands of 9 bits or more "
                             f"together, not {self.input_dtype.name} x {self.weight_dtype.name}", where=where)
        self._check_packing(where)

    def _check_packing(self, where: str) -> None:
        if not self.packed_products:
            return
        if self.products_in_luts:
            raise HwgenError("packed_products and products_in_luts exclude each other", where=where)
        if not self.can_pack_products():
            raise HwgenError(f"packed_products needs products that take DSPs, PE of 2 or more, an unsigned "
                             f"input and a product field and weight within a DSP's {PACKED_PORT_BITS}-bit port, "
                             f"not PE={self.PE} with {self.input_dtype.name} x {self.weight_dtype.name}", where=where)

    # -- folding

    def refolded(self, **knobs: int) -> MVU:
        """Another PE / SIMD (and weight memory: `weights_in_luts`) without checking the weights
        again (nothing derived from them depends on the folding)."""
        new = copy.copy(self)
        for name, value in knobs.items():
            if name in ("weights_in_luts", "products_in_luts", "packed_products"):
                object.__setattr__(new, name, bool(value))
                continue
            if name not in ("PE", "SIMD"):
                raise HwgenError(f"{name} is not a folding knob of an MVU", where="MVU")
            object.__setattr__(new, name, value)
        if new.MH % new.PE or new.MW % new.SIMD:
            raise HwgenError(f"PE={new.PE} / SIMD={new.SIMD} do not divide MH={new.MH} / MW={new.MW}", where="MVU")
        if new.products_in_luts and not new.dsp_products():
            raise HwgenError(f"products_in_luts applies to products that would take DSPs, not "
                             f"{new.input_dtype.name} x {new.weight_dtype.name}", where="MVU")
        new._check_packing("MVU")
        return new

    def folding_space(self) -> list[dict[str, int]]:
        """Every PE / SIMD pair, each with its weights where the memory model puts them and, where
        that is block RAM (and the weights are a ROM), in LUTs as well: which is cheaper depends
        on the memory's shape and on how much block RAM the design has left."""
        space = []
        wbits = self.weight_dtype.bitwidth()
        for knobs in super().folding_space():
            space.append({**knobs, "weights_in_luts": 0})
            depth, width = self.MH // knobs["PE"] * (self.MW // knobs["SIMD"]), knobs["PE"] * knobs["SIMD"] * wbits
            if in_bram(depth, width) and not self.weights_loaded:
                space.append({**knobs, "weights_in_luts": 1})
        return space

    def weights_in_bram(self) -> bool:
        """Whether the weight memory is in block RAM."""
        return not (self.weights_in_uram or self.weights_in_luts) and in_bram(*self._memories()[0])

    @property
    def NF(self) -> int:
        """Output beats (neuron folds) per vector."""
        return self.MH // self.PE

    @property
    def SF(self) -> int:
        """Input beats (synapse folds) per vector."""
        return self.MW // self.SIMD

    # -- interface

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.input_dtype, self.SIMD, self.vectors_per_frame * self.SF),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.output_dtype, self.PE, self.vectors_per_frame * self.NF),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        x = check_values(x, self.input_dtype, "MVU input")
        n = x.shape[0]
        acc = mvu_reference(x.reshape(n, self.vectors_per_frame, self.MW), self.weights,
                            self.input_dtype, self.weight_dtype)
        if self.thresholds is not None:
            acc = multithreshold(acc, self.thresholds, self.output_dtype, self.out_bias)
        return acc.reshape(n, self.vectors_per_frame * self.MH)

    def component(self) -> wiring.Component:
        return MVUComponent(self)

    # -- estimates

    def held_fraction(self) -> float:
        """The vector being computed, the next one in the ping-pong buffer, and one arriving."""
        return min(1.0, 3 / self.vectors_per_frame)

    def least_held_fraction(self) -> float:
        """One vector."""
        return 1 / self.vectors_per_frame

    def est_cycles(self) -> int:
        return self.vectors_per_frame * self.SF * self.NF

    def _memories(self) -> list[tuple[int, int]]:
        """(depth, width) of the weight ROM, threshold ROM and input ping-pong buffer (NF > 1)."""
        hw = self._hw
        mems = [(self.NF * self.SF, self.PE * self.SIMD * self.weight_dtype.bitwidth())]
        if self.thresholds is not None:
            mems.append((self.NF, self.PE * self.thresholds.shape[1] * hw.acc_bits))
        if self.NF > 1:
            mems.append((2 * self.SF, self.SIMD * self.input_dtype.bitwidth()))
        return mems

    def parameter_memories(self) -> list[tuple[int, int, str]]:
        mems = self._memories()
        return [(*mems[0], "weights")] + ([(*mems[1], "thresholds")] if self.thresholds is not None else [])

    def ram_weight_memories(self) -> list[tuple[int, int]]:
        """The weight memory, unless folding put it in LUTs."""
        return [] if self.weights_in_luts else [self._memories()[0]]

    def weight_stream(self) -> np.ndarray | None:
        """This unit's share of the weight stream (uint8 (beats, 8)), None unless its weights are
        loaded at start-up."""
        if not self.weights_loaded:
            return None
        return stream_beats(weight_words(self), self.PE * self.SIMD * self.weight_dtype.bitwidth())

    def est_urams(self) -> int:
        """UltraRAMs (URAM288) of the weight memory, when it is placed there."""
        return uram_count(*self._memories()[0]) if self.weights_in_uram else 0

    def est_luts(self) -> int:
        """LUT model (6-input LUTs), fitted to Yosys `synth_xilinx` on the units of TFC-W1A1 and
        CNV-W1A1 at two foldings each (`tests/test_estimates.py`):

        - popcount modes (BINARY x BINARY, BIPOLAR x BIPOLAR): per lane the LUTs of its bit heap
          (`bit_heap_luts`), whose first counters take the XNORs in; a weight ROM of at most
          `MERGED_ROM_WORDS` words goes into those counters too (three XNOR'd bits and the three
          address bits are one LUT's six inputs); TERNARY x BIPOLAR likewise, and one more heap
          for the beat's nonzero count;
        - other modes: per product, ibits*wbits LUTs for a multiplier (or max(ibits, wbits) when
          one operand is 1-bit: a select), plus ~product-width LUTs of adder tree;
        - accumulators: PE*acc_bits; thresholds: `threshold_luts`; output register/mux: PE*obits;
        - memories (`memory_luts`; the ping-pong input buffer, a RAM: `ram_luts`);
          the step counters (a LUT per bit), plus, with the ping-pong buffer (NF > 1), its write
          counter and bank flags (a LUT per address bit);
        - loaded weights: the loader's word and beat counters and a few LUTs of control, the
          weight memory a RAM (`ram_luts` out of block RAM, none in block RAM or UltraRAM).
        """
        hw = self._hw
        ib, wb = self.input_dtype.bitwidth(), self.weight_dtype.bitwidth()
        memories = self._memories()
        loader = 0
        if self.weights_loaded:  # a RAM written by the loader: its counters and word register
            depth, width = memories[0]
            loader = (depth - 1).bit_length() + beats_per_word(width).bit_length() + 4
            ram = 0 if self.weights_in_uram or self.weights_in_bram() else ram_luts(depth, width)
            loader += ram
            memories = [(0, 0)] + memories[1:]  # priced here, not as a ROM
        weight_rom = self.weight_rom_luts() if memories[0][0] else 0
        if hw.popcount:
            datapath = self.PE * bit_heap_luts([self.SIMD])
        elif _ternary_popcount(self):
            # per lane its popcount, and the beat's nonzero count once: bit heaps whose first
            # counters take the three-input bits in (Yosys, PE 4 and 16 at SIMD 72: within 8 %)
            datapath = (self.PE + 1) * bit_heap_luts([self.SIMD])
        elif self.products_in_luts:
            datapath = self.PE * lut_product_luts(self.SIMD, ib, wb)
        elif self.packed_products:
            datapath = packed_product_luts(self.PE, self.SIMD, ib, wb, self.weight_dtype.signed())
        elif self.est_dsps():
            datapath = self.PE * self.SIMD * (ib + wb)  # the products are in DSPs; adder tree only
        elif _signed_weights(self):
            # per lane an adder tree of picks, once the beat's sum (Yosys, CNV's first layer at
            # PE 2 to 16: within 1 % up to PE 8, 14 % over at 16); a ROM of at most four words
            # goes into the picks' first adders (two address bits beside the pixel bits)
            datapath = math.ceil(self.PE * self.SIMD * (ib + 5.5)) + self.SIMD * (ib + 7)
            if memories[0][0] <= 4:
                weight_rom = 0  # in the picks' first adders
        else:
            prod = max(ib, wb) if min(ib, wb) == 1 else ib * wb
            datapath = self.PE * self.SIMD * (prod + ib + wb)
        counter_bits = sum(max(1, (n - 1).bit_length()) for n in (self.NF, self.SF, self.NF * self.SF))
        luts = datapath + self.PE * hw.acc_bits + self.PE * self.output_dtype.bitwidth() + counter_bits + loader
        if hw.bipolar_popcount and self.thresholds is None:
            luts += self.PE * self.output_dtype.bitwidth()  # the output's 2P - MW
        if self.NF > 1:
            luts += (2 * self.SF - 1).bit_length()
            depth, width = memories.pop()  # the ping-pong buffer, a RAM
            luts += 0 if in_bram(depth, width) else ram_luts(depth, width)
        if self.thresholds is not None:
            luts += threshold_luts(self.PE, self.thresholds.shape[1], hw.acc_bits)
        return luts + weight_rom + sum(memory_luts(d, w) for d, w in memories[1:])

    def weight_rom_luts(self) -> int:
        """LUTs of the weight ROM: in block RAM, the read mux across banks (`memory_luts`); out of
        it, a ROM of random content as Yosys builds it (`logic_rom_luts`); in popcount mode a ROM
        of at most `MERGED_ROM_WORDS` words goes into the first counters (none)."""
        depth, width = self._memories()[0]
        if self.weights_in_bram():
            return memory_luts(depth, width, in_block=True)
        if self._hw.popcount and depth <= MERGED_ROM_WORDS:
            return 0
        return logic_rom_luts(depth, width)

    def dsp_products(self) -> bool:
        """Whether the lanes' products are multipliers a synthesizer maps to DSP slices: both
        operands multi-bit and the product 9 bits or more (8-bit x 8-bit, 2-bit x 8-bit), the
        rule by which Yosys's synth_xilinx (and Vivado, by default) take a DSP48. XNOR/popcount
        lanes and +-1 / {0, 1} operands (a select or a negation) are not."""
        ib, wb = self.input_dtype.bitwidth(), self.weight_dtype.bitwidth()
        return not (self._hw.popcount or min(ib, wb) == 1 or ib + wb < 9)

    def est_dsps(self) -> int:
        """One DSP48 per product lane (PE*SIMD) where the products are DSP multipliers
        (`dsp_products`), one per two lanes' products where they are packed (`packed_products`),
        none where they are built in LUTs (`products_in_luts`)."""
        if not self.dsp_products() or self.products_in_luts:
            return 0
        return (self.PE - self.PE // 2) * self.SIMD if self.packed_products else self.PE * self.SIMD

    def can_pack_products(self) -> bool:
        """Whether two lanes' products can share a DSP (`packed_products`, `_packed_dots`): they
        take DSPs, there are two lanes, the input is unsigned (a stem's pixels: the low lane's
        products are then unsigned and its field borrows nothing from the high lane's) and
        within the 18-bit port as signed, and the low lane's field (`packed_shift`) with the
        high lane's weight above it fits the wide port on every family (`PACKED_PORT_BITS`)."""
        ib = self.input_dtype.bitwidth()
        field = packed_shift(self.input_dtype, self.weight_dtype)
        return (self.dsp_products() and self.PE >= 2 and not self.input_dtype.signed() and ib < 18
                and field + self.weight_dtype.bitwidth() <= PACKED_PORT_BITS)

    def est_brams(self) -> int:
        """18 Kb BRAMs of the weight ROM, threshold ROM and input ping-pong buffer
        (`memory_bram18`); none for weights in UltraRAM."""
        mems = self._memories()
        return sum(memory_bram18(d, w) for d, w in (mems if self.weights_in_bram() else mems[1:]))


#: a weight ROM this shallow (3 address bits) merges into the XNOR-popcount's first counters
MERGED_ROM_WORDS = 8
#: bits of the multiplier port that takes two packed weights (`packed_products`): the DSP48E1's
#: 25 (7-series); the UltraScale+ DSP48E2's 27 would take more, 25 holds on both
PACKED_PORT_BITS = 25


def packed_shift(input_dtype: BaseDataType, weight_dtype: BaseDataType) -> int:
    """The bits of the low lane's field in a packed product (`_packed_dots`): those of an
    unsigned input times an unsigned weight of the same widths."""
    return input_dtype.bitwidth() + weight_dtype.bitwidth()


@dataclass(frozen=True, eq=False)
class _HwParams:
    """What the gateware computes, derived from an MVU's parameters.

    popcount: the lanes popcount ~(x ^ w) (BINARY x BINARY, and BIPOLAR x BIPOLAR, where the true
    accumulator is 2*P - MW and thresholds are moved into the popcount domain);
    acc_lo/acc_hi: range of the hardware accumulator; acc_bits/acc_signed: its shape, wide enough
    for [acc_lo, acc_hi + 1] so that clamped thresholds share it.
    """

    popcount: bool
    bipolar_popcount: bool
    acc_lo: int
    acc_hi: int
    acc_bits: int
    acc_signed: bool
    thresholds: np.ndarray | None

    @staticmethod
    def of(u: MVU, acc_lo: int, acc_hi: int) -> _HwParams:
        bipolar_popcount = is_bipolar(u.input_dtype) and is_bipolar(u.weight_dtype)
        popcount = bipolar_popcount or is_xnor(u.input_dtype, u.weight_dtype)
        thr = u.thresholds
        if bipolar_popcount:
            acc_lo, acc_hi = 0, u.MW
            if thr is not None:
                # 2P - MW >= t  <=>  P >= ceil((t + MW) / 2)
                thr = -((-(thr + u.MW)) // 2)
        if thr is not None:
            thr = clamp_thresholds(thr, acc_lo, acc_hi)
            thr.setflags(write=False)
        bits, sgn = range_bits(acc_lo, acc_hi + 1)
        return _HwParams(popcount, bipolar_popcount, acc_lo, acc_hi, bits, sgn, thr)

    @property
    def acc_shape(self):
        return signed(self.acc_bits) if self.acc_signed else unsigned(self.acc_bits)


def weight_words(u: MVU) -> list[int]:
    """Weight ROM image: word nf*SF + sf holds, for lane pe, element s at bits
    ((pe*SIMD)+s)*wbits the wire code of W[sf*SIMD + s, nf*PE + pe]."""
    wbits = u.weight_dtype.bitwidth()
    if is_bipolar(u.weight_dtype):
        codes = (u.weights > 0).astype(np.int64)
    else:
        codes = u.weights & ((1 << wbits) - 1)
    # (SF, SIMD, NF, PE) -> (NF, SF, PE, SIMD): one word per (nf, sf), lanes pe-major
    folded = codes.reshape(u.SF, u.SIMD, u.NF, u.PE).transpose(2, 0, 3, 1).reshape(u.NF * u.SF, -1)
    return pack_words(folded, wbits)


def _signed_weights(u: "MVU") -> bool:
    """+-1 weights against multi-bit inputs (a BNN's first layer on 8-bit pixels): each lane's
    sum is then twice the sum of the inputs its +1 weights pick, less the sum of all inputs,
    which all lanes share. A pick is an AND that the adder's LUTs absorb; a conditional negation
    per product is not: Yosys, CNV's first layer (PE 8, SIMD 27): 5,427 LUTs negating."""
    return (is_bipolar(u.weight_dtype) and not is_bipolar(u.input_dtype) and u.input_dtype.bitwidth() > 1
            and not _ternary_popcount(u))


def _ternary_popcount(u: "MVU") -> bool:
    """+-1 weights against {-1, 0, +1} inputs (a binary convolution's windows, padded with real
    zeros): x * w is +1 where x is nonzero and its sign bit differs from w's code bit (1 = +1),
    -1 where x is nonzero otherwise, so each lane's sum is 2 * popcount(nz & (s ^ w)) less the
    beat's nonzero count, which all lanes share: a bit heap per lane, as XNOR-popcount has, in
    place of an adder tree of two-bit picks."""
    return is_bipolar(u.weight_dtype) and is_ternary(u.input_dtype)


def _shared_sum(m: Module, x: Value, u: "MVU", register) -> Value:
    """The sum of the SIMD input elements of beat `x`, once for every lane, through as many
    pipeline registers as each lane's sum of picks (a tree of the same size)."""
    ibits = u.input_dtype.bitwidth()
    total, _ = staged_tree_sum([decode(x[s * ibits:(s + 1) * ibits], u.input_dtype) for s in range(u.SIMD)],
                                   register)
    held = Signal(total.shape(), name="beat_sum")
    m.d.comb += held.eq(total)
    return held


def _product(x: Value, xdt: BaseDataType, w: Value, wdt: BaseDataType) -> Value:
    """Value of x*w for one element pair (not both 1-bit popcount types)."""
    xv, wv = decode(x, xdt), decode(w, wdt)
    if is_bipolar(wdt):
        return Mux(w[0], xv, -xv)
    if is_bipolar(xdt):
        return Mux(x[0], wv, -wv)
    if is_binary(wdt):
        return Mux(w[0], xv, 0)
    if is_binary(xdt):
        return Mux(x[0], wv, 0)
    return xv * wv


def _bit_plane_dot(x: Value, w: Value, u: MVU, register) -> tuple[Value, int]:
    """The sum of SIMD products x*w without a multiplier (`MVU.products_in_luts`): the operand
    of fewer bits is split into its bit planes; plane j sums the other operand's values where
    bit j is set (a pick, as for +-1 weights), and the planes add
    up shifted, the top one subtracted for a signed operand (two's complement). A register
    holds the planes' sums before they add up: the lanes' depth is the planes' trees, one, and
    the last tree."""
    ibits, wbits, SIMD = u.input_dtype.bitwidth(), u.weight_dtype.bitwidth(), u.SIMD
    xs = [x[s * ibits:(s + 1) * ibits] for s in range(SIMD)]
    ws = [w[s * wbits:(s + 1) * wbits] for s in range(SIMD)]
    if wbits <= ibits:  # planes of the weights pick the inputs
        values, codes, code_dtype = [decode(v, u.input_dtype) for v in xs], ws, u.weight_dtype
    else:
        values, codes, code_dtype = [decode(v, u.weight_dtype) for v in ws], xs, u.input_dtype
    bits = code_dtype.bitwidth()
    planes, depth = [], 0
    for j in range(bits):
        plane, depth = staged_tree_sum([Mux(code[j], value, 0) for value, code in zip(values, codes)], register)
        planes.append(register(plane))
    terms = [plane << j for j, plane in enumerate(planes)]
    if code_dtype.signed():
        terms[-1] = -terms[-1]
    total, last = staged_tree_sum(terms, register)
    return total, depth + 1 + last


def _packed_dots(x: Value, w_low: Value, w_high: Value, u: MVU, register) -> tuple[tuple[Value, Value], int]:
    """Two lanes' sums of SIMD products, one multiplier a product pair (`MVU.packed_products`):
    the input x (unsigned) shared, the weights packed as w_low' + 2^S * w_high, where w_low' is
    the low weight made unsigned (w_low + 2^(b-1) for signed b-bit weights: its sign bit
    flipped) and S = `packed_shift` bits hold every x * w_low' (a concatenation: no adder).
    p = x * w_low' + 2^S * x * w_high, its low S bits x * w_low' (no borrow from the high
    lane's field, the product being unsigned) and p >> S exactly x * w_high. The low lane's sum
    is then the sum of x * w_low' less 2^(b-1) times the beat's input sum (one for every lane),
    so the two adder trees are the size they are without packing. Returned before the low lane's
    offset is taken off (`lane_dots` does, a register later)."""
    ibits, wbits, SIMD = u.input_dtype.bitwidth(), u.weight_dtype.bitwidth(), u.SIMD
    shift, offset = packed_shift(u.input_dtype, u.weight_dtype), u.weight_dtype.signed()
    lows, highs = [], []
    for s in range(SIMD):
        xv = decode(x[s * ibits:(s + 1) * ibits], u.input_dtype)
        low = w_low[s * wbits:(s + 1) * wbits]
        if offset:
            low = Cat(low[:wbits - 1], ~low[wbits - 1])
        packed = Cat(low, Const(0, shift - wbits), w_high[s * wbits:(s + 1) * wbits])
        p = xv * (packed.as_signed() if u.weight_dtype.signed() else packed)
        lows.append(p[:shift])
        highs.append(p.as_signed() >> shift if u.weight_dtype.signed() else p >> shift)
    low, depth = staged_tree_sum(lows, register)
    high, _ = staged_tree_sum(highs, register)
    return (low, high), depth


def packed_product_luts(pe: int, simd: int, ibits: int, wbits: int, offset: bool) -> int:
    """LUTs of the lanes' sums of products two to a DSP (`_packed_dots`): each product split
    from its pair goes into its lane's adder tree in LUTs (a DSP cascade no longer takes the
    tree), some 64 LUTs a lane of splitting and the offset's subtraction, and with signed
    weights the beat's input sum once. Fitted to Yosys `synth_xilinx` on UINT8 x INT8 lanes at
    PE 2 / SIMD 7, PE 4 / SIMD 21 and PE 8 / SIMD 21 (the unit within 5 %; `tests/test_estimates.py`).
    At SIMD 1 (no adder tree) it overstates, as the unit's model does without packing there
    (Yosys folds those accumulators into the DSPs), so folding packs such a layer only where
    it would otherwise build its products in LUTs at a higher price."""
    shared = simd * (ibits + math.ceil(math.log2(simd))) if offset and simd > 1 else 0
    return pe * simd * (ibits + wbits + 1) + shared + 64 * pe


def lut_product_luts(simd: int, ibits: int, wbits: int) -> int:
    """LUTs of one lane's sum of `simd` products built in LUTs (`_bit_plane_dot`): per plane of
    the narrower operand and per product, a pick of the wider operand and its share of the
    plane's adder tree (a LUT a bit of each, the tree's words growing with its depth), the
    planes' own tree within that. Fitted to Yosys `synth_xilinx` on 8-bit x 8-bit lanes of 21
    and 32 products and 6-bit x 5-bit of 16 (within 5 %; `tests/test_estimates.py`)."""
    narrow, wide = min(ibits, wbits), max(ibits, wbits)
    return math.ceil(narrow * simd * (wide + 4 + 0.5 * math.log2(simd)))


def lane_dots(m: Module, u: MVU, x1: Value, wdata: Value, register) -> tuple[list[Value], int]:
    """Per lane, the dot product of the input beat `x1` (SIMD elements) and the lane's part of
    the weight word `wdata`: popcount(~(x ^ w)) or the sum of SIMD products, through a pipeline
    register after every level of its counters (`register`); returns the lanes' values and the
    registers on their way (the same for every lane)."""
    hw = u._hw
    ibits, wbits, SIMD = u.input_dtype.bitwidth(), u.weight_dtype.bitwidth(), u.SIMD
    picks = _signed_weights(u)  # +-1 weights: picks of the inputs, less the beat's sum
    shared = (_shared_sum(m, x1, u, register)
              if picks or (u.packed_products and u.weight_dtype.signed()) else None)
    ternary = _ternary_popcount(u)
    if ternary:  # the beat's nonzero and sign bits, and its nonzero count once for every lane
        nonzero, sign = Signal(SIMD, name="nonzero"), Signal(SIMD, name="sign")
        m.d.comb += [nonzero.eq(Cat(*(x1[2 * s] for s in range(SIMD)))),
                     sign.eq(Cat(*(x1[2 * s + 1] for s in range(SIMD))))]
        nonzeros, _ = popcount(m, nonzero, name="nz_", register=register)
    dot_values, depth = [], 0
    for pe in range(u.PE):
        lane_w = wdata[pe * SIMD * wbits : (pe + 1) * SIMD * wbits]
        if hw.popcount:
            agree = Signal(SIMD, name=f"agree{pe}")
            m.d.comb += agree.eq(~(x1 ^ lane_w))
            dot, depth = popcount(m, agree, name=f"pc{pe}_", register=register)
        elif ternary:  # sum of x * w = 2 * (the +1 products) - (the nonzero x)
            plus = Signal(SIMD, name=f"plus{pe}")
            m.d.comb += plus.eq(nonzero & (sign ^ lane_w))
            count, depth = popcount(m, plus, name=f"pc{pe}_", register=register)
            dot = (Cat(count, Const(0, 1)).as_signed() << 1) - Cat(nonzeros, Const(0, 1)).as_signed()
        elif picks:
            # sum of x*(+-1) = 2 * (sum of x where w = +1) - sum of x
            picked, depth = staged_tree_sum(
                [Mux(lane_w[s], decode(x1[s * ibits:(s + 1) * ibits], u.input_dtype), 0) for s in range(SIMD)],
                register)
            dot = (picked << 1) - shared
        elif u.products_in_luts:
            dot, depth = _bit_plane_dot(x1, lane_w, u, register)
        elif u.packed_products and pe < u.PE - u.PE % 2:
            if pe % 2 == 0:
                pair, depth = _packed_dots(x1, lane_w, wdata[(pe + 1) * SIMD * wbits : (pe + 2) * SIMD * wbits], u,
                                           register)
            dot = pair[pe % 2]
        else:
            dot, depth = staged_tree_sum([
                _product(x1[s * ibits : (s + 1) * ibits], u.input_dtype,
                         lane_w[s * wbits : (s + 1) * wbits], u.weight_dtype)
                for s in range(SIMD)
            ], register)
        dot_values.append(dot)
    if u.packed_products:  # a register on every lane, then the low lanes' offset off (`_packed_dots`)
        dot_values = [register(dot) for dot in dot_values]
        if shared is not None:
            offset = register(shared) << (wbits - 1)
            dot_values = [dot - offset if pe % 2 == 0 and pe < u.PE - u.PE % 2 else dot
                          for pe, dot in enumerate(dot_values)]
        return dot_values, depth + 1
    return dot_values, depth


class MVUComponent(wiring.Component):
    """Pipeline, all compute stages under one global `advance` (= output register empty or being
    taken):

    S0  step counters (nf, sf): a step fires when `advance` and its input beat is there; the weight
        ROM (sync read, en = advance) is addressed with the step.
    S1  x beat + weight word: per lane, popcount(~(x ^ w)) or the sum of SIMD products -> `dot`,
        through a pipeline register after every level of its counters (every `LEVELS_PER_STAGE` of its adders)
        (the beat's control bits alongside), so that no stage is deeper than what closes timing.
    S2  acc = (sf == 0 ? 0 : acc) + dot; the threshold ROM (sync read, address nf) is read alongside.
    S3  on the last sf: thresholds (or the accumulator itself) -> output register (`out`).

    Input, NF > 1: a ping-pong buffer, one memory of 2*SF words (bank b at words [b*SF, (b+1)*SF)),
    so that the unit takes its input at any rate while it computes (a smooth consumer in a chain).
    The input side fills bank `wbank` one beat per handshake, inp.ready = bank free (a register:
    no combinational path from `out.ready`), and marks it full after SF beats; the compute side
    waits for bank `rbank` to be full, runs its NF*SF steps from it (sync read port, en = advance,
    address rbank*SF + sf) and frees it on the last step. A bank freed in a cycle is taken by the
    input side from the next cycle on (its ready is the registered flag), which loses no cycle: the
    input side, finishing the other bank in that same cycle, moves to it only then. Reset: both
    banks free, both sides on bank 0.

    Input, NF == 1: every beat is used once, at its step, so it is taken straight from `inp` (no
    buffer: the unit already consumes one beat per step): inp.ready = advance, combinational from
    `out.ready` (valid never depends on ready).

    Either way a bubble enters S0 when no step fires.
    """

    def __init__(self, unit: MVU) -> None:
        self.unit = unit
        ports = stream_ports(unit.inputs[0].width, unit.outputs[0].width)
        if unit.weights_loaded:
            ports["wload"] = In(stream.Signature(unsigned(WEIGHT_BEAT_BITS)))
        super().__init__(ports)

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        hw = u._hw
        m = Module()
        NF, SF, PE, SIMD = u.NF, u.SF, u.PE, u.SIMD
        ibits, wbits = u.input_dtype.bitwidth(), u.weight_dtype.bitwidth()

        advance = Signal()
        m.d.comb += advance.eq(~self.out.valid | self.out.ready)

        # ---- S0: step counters, input, memory addresses
        nf = Signal(range(NF))
        sf = Signal(range(SF))
        step = Signal(range(NF * SF))
        fire = Signal()
        with m.If(fire):
            m.d.sync += [sf.eq(wrap_inc(sf, SF)), step.eq(wrap_inc(step, NF * SF))]
            with m.If(sf == SF - 1):
                m.d.sync += nf.eq(wrap_inc(nf, NF))

        if u.weights_loaded:  # a RAM the weight stream fills; nothing runs before it is full
            attrs = {"ram_style": "ultra"} if u.weights_in_uram else memory_attrs(
                NF * SF, PE * SIMD * wbits, rom=False, in_block=u.weights_in_bram())
            m.submodules.weights = wrom = Memory(shape=unsigned(PE * SIMD * wbits), depth=NF * SF, init=[],
                                                 attrs=attrs)
            loaded = load_memory(m, self.wload, wrom.write_port(), NF * SF, PE * SIMD * wbits)
        else:
            m.submodules.weights = wrom = Memory(
                shape=unsigned(PE * SIMD * wbits), depth=NF * SF, init=weight_words(u),
                attrs=memory_attrs(NF * SF, PE * SIMD * wbits, rom=True, in_block=u.weights_in_bram()),
            )
            loaded = Const(1)
        wrd = wrom.read_port(domain="sync")
        m.d.comb += [wrd.addr.eq(step), wrd.en.eq(advance)]

        if NF > 1:
            x1 = self._ping_pong(m, advance & loaded, fire, sf, step)
        else:
            m.d.comb += [self.inp.ready.eq(advance & loaded), fire.eq(advance & loaded & self.inp.valid)]
            x1 = Signal(SIMD * ibits)
            with m.If(advance):
                m.d.sync += x1.eq(self.inp.payload)

        # ---- S1 registers
        v1, first1, last1 = Signal(), Signal(), Signal()
        nf1 = Signal(range(NF))
        with m.If(advance):
            m.d.sync += [v1.eq(fire), first1.eq(sf == 0), last1.eq(sf == SF - 1), nf1.eq(nf)]

        # ---- S1 -> S2: per-lane dot products, pipelined (every lane passes the same registers)
        def register(value: Value) -> Value:
            held = Signal(value.shape())
            with m.If(advance):
                m.d.sync += held.eq(value)
            return held

        dot_values, depth = lane_dots(m, u, x1, wrd.data, register)
        control = [v1, first1, last1, nf1]
        for _ in range(depth):
            control = [register(c) for c in control]

        v2, first2, last2 = Signal(), Signal(), Signal()
        nf2 = Signal(range(NF))
        dots = [Signal(hw.acc_shape, name=f"dot{pe}") for pe in range(PE)]
        with m.If(advance):
            m.d.sync += [v2.eq(control[0]), first2.eq(control[1]), last2.eq(control[2]), nf2.eq(control[3])]
            m.d.sync += [held.eq(dot) for held, dot in zip(dots, dot_values)]

        # ---- S2: accumulate; threshold ROM read
        done3 = Signal()
        accs = [Signal(hw.acc_shape, name=f"acc{pe}") for pe in range(PE)]
        with m.If(advance):
            m.d.sync += done3.eq(v2 & last2)
            with m.If(v2):
                m.d.sync += [acc.eq(Mux(first2, 0, acc) + dot) for acc, dot in zip(accs, dots)]

        # ---- S3: outputs
        obits = u.output_dtype.bitwidth()
        lanes = []
        if hw.thresholds is not None:
            steps = hw.thresholds.shape[1]
            m.submodules.thresholds = trom = Memory(
                shape=unsigned(PE * steps * hw.acc_bits), depth=NF,
                init=threshold_words(hw.thresholds, PE, hw.acc_bits),
                attrs=memory_attrs(NF, PE * steps * hw.acc_bits, rom=True),
            )
            trd = trom.read_port(domain="sync")
            m.d.comb += [trd.addr.eq(nf2), trd.en.eq(advance)]
            for pe, acc in enumerate(accs):
                word = trd.data[pe * steps * hw.acc_bits : (pe + 1) * steps * hw.acc_bits]
                lanes.append(threshold_lane(acc, word, steps, hw.acc_bits, hw.acc_signed,
                                            u.output_dtype, u.out_bias))
        else:
            for acc in accs:
                # the slice assignment below truncates (or sign-extends) to obits: exact, as the
                # accumulator range fits output_dtype
                lanes.append((acc << 1) - Const(u.MW) if hw.bipolar_popcount else acc)
        out_word = Signal(self.out.payload.shape())
        for pe, lane in enumerate(lanes):
            m.d.comb += out_word[pe * obits : (pe + 1) * obits].eq(lane)
        with m.If(advance):
            m.d.sync += self.out.valid.eq(done3)
            with m.If(done3):
                m.d.sync += self.out.payload.eq(out_word)
        return m

    def _ping_pong(self, m: Module, advance: Value, fire: Signal, sf: Value, step: Value) -> Value:
        """The NF > 1 input: ping-pong buffer, input side and compute-side handshake (see the class
        docstring); drives `fire` and `inp.ready`, returns the S1 beat (the read port's data)."""
        u = self.unit
        SF, NF = u.SF, u.NF
        width = u.SIMD * u.input_dtype.bitwidth()
        m.submodules.inbuf = ibuf = Memory(
            shape=unsigned(width), depth=2 * SF, init=[],
            attrs=memory_attrs(2 * SF, width, rom=False),
        )
        bwr = ibuf.write_port()
        brd = ibuf.read_port(domain="sync")

        full = Signal(2)  # bank b holds a whole vector not yet computed
        wbank, rbank = Signal(), Signal()
        wsf = Signal(range(SF))
        take = Signal()
        m.d.comb += [
            self.inp.ready.eq(~full.bit_select(wbank, 1)),
            take.eq(self.inp.valid & self.inp.ready),
            bwr.addr.eq(Mux(wbank, wsf + SF, wsf)), bwr.data.eq(self.inp.payload), bwr.en.eq(take),
            fire.eq(advance & full.bit_select(rbank, 1)),
            brd.addr.eq(Mux(rbank, sf + SF, sf)), brd.en.eq(advance),
        ]
        with m.If(take):
            m.d.sync += wsf.eq(wrap_inc(wsf, SF))
        filled = take & (wsf == SF - 1)
        freed = fire & (step == NF * SF - 1)
        with m.If(filled):
            m.d.sync += wbank.eq(~wbank)
        with m.If(freed):
            m.d.sync += rbank.eq(~rbank)
        # a bank is filled only while free and freed only while full: never both at once
        for b in range(2):
            with m.If(filled & (wbank == b)):
                m.d.sync += full[b].eq(1)
            with m.If(freed & (rbank == b)):
                m.d.sync += full[b].eq(0)
        return brd.data

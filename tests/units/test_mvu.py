"""MVU: the numpy reference against hand-worked cases, the parameter checks, the estimates, then the
gateware in Verilator bit-exact against the reference, with and without random stalls, and the
simulated cycles per frame equal to `est_cycles`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim import simulate_unit
from hwgen.units.base import Unit
from hwgen.units.datapath import memory_bram18
from hwgen.units.fifo import StreamingFifo
from hwgen.units.mvu import MVU, accumulator_dtype, accumulator_range

BINARY, BIPOLAR = DataType["BINARY"], DataType["BIPOLAR"]
INT2, UINT2, UINT8, INT8 = DataType["INT2"], DataType["UINT2"], DataType["UINT8"], DataType["INT8"]
TERNARY = DataType["TERNARY"]


def random_values(rng: np.random.Generator, dtype, shape) -> np.ndarray:
    if dtype == BIPOLAR:
        return rng.choice([-1, 1], size=shape)
    return rng.integers(int(dtype.min()), int(dtype.max()) + 1, size=shape)


# ---- reference ---------------------------------------------------------------------------------


def test_xnor_reference_counts_matches_then_thresholds():
    w = np.array([[1, 0], [0, 0], [1, 1]])
    u = MVU(3, 2, 1, 1, BINARY, BINARY, w, np.array([[3], [3]]), BIPOLAR)
    # column 0: 1==1, 0==0, 1==1 -> 3 >= 3 -> +1; column 1: 1!=0, 0==0, 1==1 -> 2 < 3 -> -1
    assert u.reference(np.array([[1, 0, 1]])).tolist() == [[1, -1]]


def test_bipolar_weights_accumulator_reference():
    w = np.array([[1, -1], [-1, -1], [-1, 1]])
    u = MVU(3, 2, 1, 1, INT2, BIPOLAR, w, None, DataType["INT4"])
    # column 0: -2*1 + 1*-1 + -1*-1 = -2; column 1: -2*-1 + 1*-1 + -1*1 = 0
    assert u.reference(np.array([[-2, 1, -1]])).tolist() == [[-2, 0]]


def test_multi_threshold_reference_with_bias():
    w = np.array([[1], [1]])
    thr = np.array([[0, 2, 3]])
    u = MVU(2, 1, 1, 1, INT2, INT2, w, thr, INT2, out_bias=-2)
    # acc = x0 + x1; counts for acc = -4, 0, 2: 0, 1, 2 -> -2, -1, 0
    x = np.array([[-2, -2], [1, -1], [1, 1]])
    assert u.reference(x).tolist() == [[-2], [-1], [0]]


def test_bipolar_output_accepts_qonnx_bias_form():
    w = np.array([[1], [1]])
    for bias in (0, -1):
        u = MVU(2, 1, 1, 1, BINARY, BINARY, w, np.array([[2]]), BIPOLAR, out_bias=bias)
        assert u.reference(np.array([[1, 1], [1, 0]])).tolist() == [[1], [-1]]


def test_vectors_per_frame_reference():
    w = np.array([[1, 2], [3, 4]])
    u = MVU(2, 2, 1, 1, UINT2, DataType["UINT3"], w, None, DataType["UINT5"], vectors_per_frame=2)
    assert u.reference(np.array([[1, 0, 0, 1]])).tolist() == [[1, 2, 3, 4]]
    assert u.inputs[0].beats_per_frame == 4 and u.outputs[0].beats_per_frame == 4


def test_accumulator_dtype():
    ones = np.ones((4, 2), dtype=int)
    assert accumulator_range(UINT8, BIPOLAR, ones) == (0, 1020)
    assert accumulator_dtype(UINT8, BIPOLAR, ones) == DataType["UINT10"]
    assert accumulator_dtype(UINT8, BIPOLAR, np.array([[1, -1]])) == DataType["INT9"]
    assert accumulator_dtype(BINARY, BINARY, np.zeros((16, 3), dtype=int)) == DataType["UINT5"]
    assert accumulator_range(INT2, INT2, np.array([[-2], [1], [0]])) == (-4, 5)
    assert accumulator_dtype(BIPOLAR, BIPOLAR, np.ones((12, 1), dtype=int)) == DataType["INT5"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(PE=3), "PE"),
        (dict(SIMD=3), "SIMD"),
        (dict(MW=0), "MW"),
        (dict(weights=np.full((4, 4), 2)), "weights"),
        (dict(weights=np.ones((4, 2))), "weights"),
        (dict(input_dtype=DataType["FLOAT32"]), "input_dtype"),
        (dict(output_dtype=DataType["UINT2"]), "output_dtype"),
        (dict(output_dtype=BIPOLAR), "output_dtype"),
        (dict(thresholds=np.zeros((4, 2)), output_dtype=BIPOLAR), "threshold"),
        (dict(thresholds=np.array([[2, 1]] * 4), output_dtype=UINT2), "ascending"),
        (dict(thresholds=np.zeros((3, 1)), output_dtype=BIPOLAR), "thresholds"),
        (dict(thresholds=np.zeros((4, 3)), output_dtype=UINT2, out_bias=1), "out_bias"),
    ],
)
def test_bad_parameters_are_named(kwargs, name):
    params = dict(MW=4, MH=4, PE=2, SIMD=2, input_dtype=BINARY, weight_dtype=BINARY,
                  weights=np.ones((4, 4), dtype=int), thresholds=None, output_dtype=DataType["UINT3"])
    params.update(kwargs)
    with pytest.raises(HwgenError, match=name):
        MVU(**params)


def test_estimates():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2, size=(256, 64))
    u = MVU(256, 64, 4, 16, BINARY, BINARY, w, np.full((64, 1), 128), BIPOLAR, vectors_per_frame=3)
    assert u.est_cycles() == 3 * 16 * 16
    # weight ROM 256 x 64 bits: two 512x36 BRAMs; threshold ROM and input buffer stay in LUTs
    assert u.est_brams() == 2
    small = MVU(256, 64, 64, 256, BINARY, BINARY, w, np.full((64, 1), 128), BIPOLAR)
    assert small.est_cycles() == 1 and small.est_brams() == 0
    assert small.est_luts() > u.est_luts()
    assert memory_bram18(1024, 18) == 1
    assert memory_bram18(1500, 36) == 3  # 512x36 x 3 beats 1Kx18 x 4
    assert memory_bram18(16384, 1) == 1
    assert memory_bram18(100, 36) == 0  # 3600 bits: LUTRAM


# ---- Verilator ---------------------------------------------------------------------------------

#: (MW, MH, PE, SIMD, input, weights, thresholds per neuron (0: none), output, out_bias, vectors)
CASES = {
    # XNOR-popcount, 1 threshold, bipolar out
    "xnor": (16, 8, 2, 4, BINARY, BINARY, 1, BIPOLAR, 0, 1),
    # 2-bit activations x bipolar weights, fully folded (PE = SIMD = 1), two vectors per frame
    "int2_bipolar_pe1_simd1": (8, 4, 1, 1, INT2, BIPOLAR, 1, BIPOLAR, 0, 2),
    # 2-bit x 2-bit, 3 thresholds, all neurons at once (PE = MH)
    "int2_int2_t3_pe_mh": (12, 6, 6, 2, INT2, INT2, 3, INT2, -2, 1),
    # uint8 x bipolar, accumulator out (signed), whole vector per beat (SIMD = MW)
    "uint8_bipolar_acc_simd_mw": (16, 8, 2, 16, UINT8, BIPOLAR, 0, None, 0, 1),
    # bipolar x bipolar (popcount inside, 2P - MW out), fully parallel
    "bipolar_bipolar_acc_full": (24, 6, 6, 24, BIPOLAR, BIPOLAR, 0, None, 0, 1),
    # bipolar x bipolar with thresholds (moved into the popcount domain), convolution-like frame
    "bipolar_bipolar_t1_conv": (20, 8, 4, 5, BIPOLAR, BIPOLAR, 1, BIPOLAR, 0, 3),
    # a wide popcount: its counter heap passes pipeline registers, two vectors per frame
    "xnor_wide_pipelined": (288, 4, 2, 144, BINARY, BINARY, 1, BIPOLAR, 0, 2),
    # CNV's first layer in small: uint8 x bipolar as picked sums less the shared beat sum, pipelined
    "uint8_bipolar_shared_sum": (27, 8, 4, 27, UINT8, BIPOLAR, 1, BIPOLAR, 0, 3),
    # CNV's first layer on signed pixels: the top bit's column of the bit heaps holds complements
    "int8_bipolar_signed_heap": (27, 8, 4, 9, INT8, BIPOLAR, 1, BIPOLAR, 0, 3),
    # a padded binary convolution's windows ({-1, 0, +1}) x bipolar weights: two popcounts, thresholds
    "ternary_bipolar_t1": (18, 8, 2, 6, TERNARY, BIPOLAR, 1, BIPOLAR, 0, 3),
    # the same, wide (its heaps and the shared nonzero count pass the same registers), accumulator out
    "ternary_bipolar_wide_acc": (144, 4, 4, 72, TERNARY, BIPOLAR, 0, None, 0, 2),
}


def make_mvu(rng, MW, MH, PE, SIMD, idt, wdt, steps, odt, bias, vectors) -> MVU:
    w = random_values(rng, wdt, (MW, MH))
    if steps:
        lo, hi = accumulator_range(idt, wdt, w)
        # a margin outside the accumulator range exercises the always/never clamping
        thr = np.sort(rng.integers(lo - 3, hi + 4, size=(MH, steps)), axis=1)
    else:
        thr, odt = None, accumulator_dtype(idt, wdt, w)
    return MVU(MW, MH, PE, SIMD, idt, wdt, w, thr, odt, bias, vectors_per_frame=vectors)


def test_wide_sums_pass_pipeline_registers():
    """The two wide cases above do go through registers (else they would not test them)."""
    from amaranth.hdl import Module, Signal

    from hwgen.units.datapath import popcount, staged_tree_sum

    m = Module()
    registered = []

    def register(value):
        held = Signal(value.shape())
        registered.append(held)
        m.d.sync += held.eq(value)
        return held

    assert popcount(m, Signal(144), register=register)[1] >= 1
    assert staged_tree_sum([Signal(8) for _ in range(27)], register)[1] >= 1
    assert popcount(m, Signal(2), register=register)[1] == 0


@pytest.mark.parametrize("case", CASES)
def test_mvu_verilator_matches_reference(case, check_unit):
    rng = np.random.default_rng(sum(map(ord, case)))
    unit = make_mvu(rng, *CASES[case])
    frames = random_values(rng, unit.input_dtype, (8, unit.inputs[0].elems_per_frame))
    check_unit(unit, frames, seed=7)


# ---- smooth consumption in a chain ---------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Chain(Unit):
    """Two MVUs through a 2-deep StreamingFifo, as stitching connects them: a unit for
    `simulate_unit`."""

    first: MVU
    second: MVU

    @property
    def fifo(self) -> StreamingFifo:
        spec = self.first.outputs[0]
        return StreamingFifo(spec.dtype, spec.elems_per_beat, spec.beats_per_frame, depth=2)

    @property
    def inputs(self):
        return self.first.inputs

    @property
    def outputs(self):
        return self.second.outputs

    def reference(self, *frames):
        return self.second.reference(self.first.reference(*frames))

    def component(self):
        return _ChainComponent(self)

    def est_cycles(self):
        return max(self.first.est_cycles(), self.second.est_cycles())

    def est_luts(self):
        return self.first.est_luts() + self.fifo.est_luts() + self.second.est_luts()

    def est_brams(self):
        return self.first.est_brams() + self.fifo.est_brams() + self.second.est_brams()


class _ChainComponent(wiring.Component):
    def __init__(self, chain: _Chain) -> None:
        self.chain = chain
        super().__init__({
            "inp": In(stream.Signature(unsigned(chain.inputs[0].width))),
            "out": Out(stream.Signature(unsigned(chain.outputs[0].width))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.a = a = self.chain.first.component()
        m.submodules.fifo = fifo = self.chain.fifo.component()
        m.submodules.b = b = self.chain.second.component()
        wiring.connect(m, wiring.flipped(self.inp), a.inp)
        wiring.connect(m, a.out, fifo.inp)
        wiring.connect(m, fifo.out, b.inp)
        wiring.connect(m, b.out, wiring.flipped(self.out))
        return m


@pytest.mark.parametrize("second_nf", [7, 8])
def test_mvu_is_a_smooth_consumer(second_nf, verilator_cache):
    """The second MVU (NF > 1) takes its input while it computes, so a slow producer (one beat every
    SF = 8 cycles) never stalls on the 2-deep FIFO between them: the chain runs at exactly the first
    MVU's cycles (64), also when the second is as slow (NF*SF = 64). A unit that read its input only
    during its first output pass would stall the first for most of the other passes."""
    rng = np.random.default_rng(second_nf)
    # first: SF = 16/2 = 8, NF = 8/1 = 8 -> 64 cycles, one output beat every 8 cycles
    w0 = random_values(rng, BIPOLAR, (16, 8))
    lo, hi = accumulator_range(INT2, BIPOLAR, w0)
    first = MVU(16, 8, 1, 2, INT2, BIPOLAR, w0, rng.integers(lo, hi + 1, size=(8, 1)), BIPOLAR)
    # second: SF = 8/1 = 8, NF = second_nf -> 8 * second_nf cycles
    w1 = random_values(rng, BIPOLAR, (8, second_nf))
    thr1 = rng.integers(0, 9, size=(second_nf, 1))
    second = MVU(8, second_nf, 1, 1, BIPOLAR, BIPOLAR, w1, thr1, BIPOLAR)
    assert second.NF > 1 and second.est_cycles() <= first.est_cycles() == 64
    chain = _Chain(first, second)
    frames = random_values(rng, INT2, (12, 16))
    got, result = simulate_unit(chain, frames, cache_dir=verilator_cache)
    np.testing.assert_array_equal(got, chain.reference(frames))
    assert result.cycles_per_frame == first.est_cycles()


def test_weights_in_luts_where_block_ram_would_hold_them(check_unit):
    """A 32-word, 128-bit weight ROM: block RAM by the memory model, LUTs with weights_in_luts
    (a choice of folding); the unit computes the same either way."""
    rng = np.random.default_rng(5)
    unit = make_mvu(rng, 64, 64, 2, 64, BINARY, BINARY, 1, BIPOLAR, 0, 2)
    in_luts = unit.refolded(weights_in_luts=1)
    assert unit.weights_in_bram() and unit.est_brams() == 4
    assert not in_luts.weights_in_bram() and in_luts.est_brams() == 0
    assert in_luts.est_luts() == unit.est_luts() + 128  # a LUT per bit of the 32-word ROM
    assert {"PE": 2, "SIMD": 64, "weights_in_luts": 1} in unit.folding_space()
    assert {"PE": 64, "SIMD": 64, "weights_in_luts": 1} not in unit.folding_space()  # 1 word: LUTs anyway
    frames = random_values(rng, BINARY, (4, in_luts.inputs[0].elems_per_frame))
    check_unit(in_luts, frames, seed=3)
    with pytest.raises(HwgenError, match="exclude each other"):
        dataclasses.replace(unit, weights_loaded=True, weights_in_uram=True, weights_in_luts=True)


# ---- products in LUTs ------------------------------------------------------------------------------

#: multi-bit products that would take a DSP each, built from bit planes instead: ABC-Net's
#: multi-level weights (INT5) on its INT6 activations, a stem's UINT8 pixels x INT8 weights with a
#: pipelined wide beat, 4-bit inputs x 8-bit weights (the planes are the inputs'), unsigned x unsigned
LUT_PRODUCT_CASES = {
    "int6_int5_t3": (48, 8, 4, 12, DataType["INT6"], DataType["INT5"], 3, INT2, -2, 2),
    "uint8_int8_acc_wide": (147, 4, 2, 49, UINT8, INT8, 0, None, 0, 2),
    "int4_int8_planes_of_inputs": (16, 6, 3, 8, DataType["INT4"], INT8, 0, None, 0, 3),
    "uint4_uint6": (24, 4, 4, 6, DataType["UINT4"], DataType["UINT6"], 1, BIPOLAR, 0, 2),
}


def test_products_in_luts_only_where_they_would_take_dsps():
    rng = np.random.default_rng(0)
    unit = make_mvu(rng, *CASES["uint8_bipolar_shared_sum"])
    with pytest.raises(HwgenError, match="products_in_luts applies to products that would take DSPs, not UINT8 x BIPOLAR"):
        unit.refolded(products_in_luts=1)
    with pytest.raises(HwgenError, match="not UINT8 x BIPOLAR"):
        dataclasses.replace(unit, products_in_luts=True)


# ---- two products to a DSP -------------------------------------------------------------------------

#: products two lanes can share a DSP for (`packed_products`: an unsigned input): a stem's UINT8
#: pixels x INT8 weights, UINT6 x INT5 with thresholds and an odd PE (its last lane alone),
#: unsigned weights (no offset)
PACKED_CASES = {
    "uint8_int8": (147, 4, 4, 21, UINT8, INT8, 0, None, 0, 2),
    "uint6_int5_t3_odd_pe": (24, 6, 3, 6, DataType["UINT6"], DataType["INT5"], 3, INT2, -2, 2),
    "uint4_uint6": (24, 4, 2, 6, DataType["UINT4"], DataType["UINT6"], 0, None, 0, 2),
}


@pytest.mark.parametrize("knob, case", [("products_in_luts", case) for case in LUT_PRODUCT_CASES]
                         + [("packed_products", case) for case in PACKED_CASES])
def test_products_off_their_dsps_match_the_reference(knob, case, check_unit):
    """Products built in LUTs (no DSP) or two to a DSP (half, the odd lane alone): the same
    outputs, for more LUTs than a DSP a product."""
    rng = np.random.default_rng(sum(map(ord, case)))
    unit = make_mvu(rng, *{**LUT_PRODUCT_CASES, **PACKED_CASES}[case])
    moved = unit.refolded(**{knob: 1})
    assert unit.est_dsps() == unit.PE * unit.SIMD
    assert moved.est_dsps() == (0 if knob == "products_in_luts" else (unit.PE + 1) // 2 * unit.SIMD)
    assert moved.est_luts() > unit.est_luts()
    frames = random_values(rng, unit.input_dtype, (6, unit.inputs[0].elems_per_frame))
    check_unit(moved, frames, seed=11)


def test_packed_products_at_the_extremes_of_both_types(check_unit):
    """Every product at a corner of its range (the low field's sign decides the borrow from the
    high one): inputs 0 and 255, weights -128 and 127, in every pairing."""
    rng = np.random.default_rng(1)
    w = rng.choice([-128, 127], size=(64, 4))
    unit = MVU(64, 4, 4, 16, UINT8, INT8, w, None, accumulator_dtype(UINT8, INT8, w), vectors_per_frame=4,
               packed_products=True)
    frames = rng.choice([0, 255], size=(3, unit.inputs[0].elems_per_frame))
    check_unit(unit, frames, seed=2)


def test_packed_products_only_where_a_dsp_holds_two():
    rng = np.random.default_rng(0)
    with pytest.raises(HwgenError, match="packed_products needs .* not PE=1 with UINT8 x INT8"):
        make_mvu(rng, 16, 4, 1, 16, UINT8, INT8, 0, None, 0, 1).refolded(packed_products=1)
    with pytest.raises(HwgenError, match="an unsigned input .* not PE=2 with INT8 x INT8"):
        make_mvu(rng, 16, 4, 2, 16, INT8, INT8, 0, None, 0, 1).refolded(packed_products=1)
    wide = make_mvu(rng, 16, 4, 2, 16, DataType["UINT12"], DataType["INT8"], 0, None, 0, 1)
    with pytest.raises(HwgenError, match="within a DSP's 25-bit port, not PE=2 with UINT12 x INT8"):
        wide.refolded(packed_products=1)
    with pytest.raises(HwgenError, match="exclude each other"):
        make_mvu(rng, 16, 4, 2, 16, UINT8, INT8, 0, None, 0, 1).refolded(products_in_luts=1, packed_products=1)

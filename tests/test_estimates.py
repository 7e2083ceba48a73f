"""Estimates that folding and the parts table rely on, against Yosys `synth_xilinx` (xc7z020), unit
by unit: LUTs within 15 % (plus `SLACK_LUTS` = 24 for units of a few dozen LUTs, where one LUT is
several per cent), 18 Kb block RAMs (a RAMB36 counting two) within 15 % plus one, DSPs exactly.
TFC-W1A1 at two foldings in the default run; CNV-W1A1 at two foldings with `-m slow` (synthesis
of its units takes minutes)."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.synth import MAX_LOGIC_LEVELS, synthesize, synthesize_unit
from hwgen.units.sliding_window import SlidingWindow
from hwgen.models.bnn_pynq import bnn_pynq_model
from hwgen.models.cnv import cnv_w1a1, with_fixed_batchnorm_statistics

LUT_SHARE = 0.15
#: LUTs of slack on top of the share: a small MVU or FIFO is a few dozen LUTs, where the share is a handful
SLACK_LUTS = 24


def misses(report: dict) -> list[str]:
    """Each unit whose estimates are off, with its figures."""
    off = []
    for layer in report["layers"]:
        synth = layer["synth"]
        brams = synth["bram18"] + 2 * synth["bram36"]
        if abs(layer["est_luts"] - synth["luts"]) > LUT_SHARE * synth["luts"] + SLACK_LUTS:
            off.append(f"{layer['name']}: est {layer['est_luts']} LUTs, Yosys {synth['luts']}")
        if abs(layer["est_brams"] - brams) > LUT_SHARE * brams + 1:
            off.append(f"{layer['name']}: est {layer['est_brams']} BRAM18, Yosys {brams}")
        if layer["est_dsps"] != synth["dsp"]:
            off.append(f"{layer['name']}: est {layer['est_dsps']} DSPs, Yosys {synth['dsp']}")
    return off


def assert_alone_within_estimates_and_levels(name: str, unit, tmp_path) -> None:
    """`unit` alone through Yosys (xc7): its estimates within the shares `misses` holds, and at
    most `MAX_LOGIC_LEVELS` levels of logic."""
    synth = synthesize_unit(unit, tmp_path)
    layer = {"name": name, "est_luts": unit.est_luts(), "est_brams": unit.est_brams(), "est_dsps": unit.est_dsps(),
             "synth": synth}
    assert misses({"layers": [layer]}) == []
    assert synth["logic_levels"] <= MAX_LOGIC_LEVELS, synth["logic_levels"]


def build_and_synthesize(model, shape, tmp_path, cycles: int, cache) -> dict:
    path = tmp_path / "model.onnx"
    export_brevitas(model, shape).save(str(path))
    build(path, tmp_path / "build", BuildConfig(target_cycles=cycles, cache_dir=cache, fifo_sizing="modelled"))
    return synthesize(tmp_path / "build", jobs=2)


@pytest.mark.parametrize("cycles", [pytest.param(64, marks=pytest.mark.slow), 1024])  # PE 64: 3 minutes of Yosys
def test_tfc_estimates_match_yosys(cycles, tmp_path, verilator_cache):
    report = build_and_synthesize(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28), tmp_path, cycles, verilator_cache)
    assert misses(report) == []


@pytest.mark.slow
@pytest.mark.parametrize("cycles", [32768, 8196])
def test_cnv_estimates_match_yosys(cycles, tmp_path, verilator_cache):
    model = with_fixed_batchnorm_statistics(cnv_w1a1(), seed=0)
    report = build_and_synthesize(model, (1, 3, 32, 32), tmp_path, cycles, verilator_cache)
    assert misses(report) == []


def requantize_units() -> dict[str, object]:
    """Requantize units of the three kinds lowering makes, at several foldings: RPReLU between
    8-bit quantizers (two pieces), BatchNorm into an 8-bit quantizer on a wide accumulator (one
    piece, a DSP per lane, two where the slope is wide), a join's halving (every channel alike: a
    shift, no ROM)."""
    import numpy as np
    from qonnx.core.datatype import DataType

    from hwgen.units.piecewise import fit_table, fit_thresholds
    from hwgen.units.requantize import Requantize, coefficients_of

    rng = np.random.default_rng(0)
    x = np.arange(-128, 128)
    units = {}
    for channels, pe in ((64, 1), (64, 4), (128, 8), (32, 2)):
        shift1, shift2 = rng.uniform(-0.5, 0.5, (2, channels)).astype(np.float32)
        slope = rng.choice([-0.4, 0.1, 0.25, 0.9], channels).astype(np.float32)
        u = x[:, None].astype(np.float32) * np.float32(0.043) + shift1
        table = np.clip(np.round((np.where(u >= 0, u, slope * u) + shift2) / np.float32(0.051)), -128, 127).T
        form = fit_table(table.astype(np.int64), -128, -128, 127).form
        units[f"rprelu-c{channels}-pe{pe}"] = Requantize(channels, pe, 4, DataType["INT8"], DataType["INT8"],
                                                         coefficients_of(form), form.shift)
    for channels, pe, idt in ((64, 1, "INT12"), (64, 8, "INT16"), (32, 4, "INT10"), (128, 2, "INT14")):
        lo, hi = int(DataType[idt].min()), int(DataType[idt].max())
        scale = rng.uniform(0.002, 0.02, channels).astype(np.float32)
        bias = rng.uniform(-1, 1, channels).astype(np.float32)
        acc = np.arange(lo, hi + 1)
        y = np.clip(np.round((acc[:, None].astype(np.float32) * scale + bias) / np.float32(0.05)), -128, 127)
        thresholds = np.array([[lo + int(np.searchsorted(y[:, c], k)) for k in range(-127, 128)] for c in range(channels)])
        form = fit_thresholds(thresholds, lo, hi, -128, -128, 127)
        units[f"bn-{idt}-c{channels}-pe{pe}"] = Requantize(channels, pe, 4, DataType[idt], DataType["INT8"],
                                                           coefficients_of(form), form.shift)
    z = np.arange(-512, 512)
    form = fit_table(np.clip(np.round(z / 2.0), -128, 127).astype(np.int64)[None, :].repeat(32, 0), -512, -128, 127).form
    units["join-pe4"] = Requantize(32, 4, 4, DataType["INT10"], DataType["INT8"], coefficients_of(form), form.shift)
    return units


REQUANTIZE_DEFAULT = ("rprelu-c64-pe4", "bn-INT16-c64-pe8", "join-pe4")


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in REQUANTIZE_DEFAULT else pytest.mark.slow)
                                  for n in requantize_units()])
def test_requantize_estimates_match_yosys(name, tmp_path):
    """Each Requantize unit alone through Yosys (xc7): LUTs, block RAM and DSPs as the other units'."""
    assert_alone_within_estimates_and_levels(name, requantize_units()[name], tmp_path)


def threshold_roms_in_luts() -> dict[str, object]:
    """Thresholding units whose ROM the memory model would put into block RAM, built from LUTs
    (`thresholds_in_luts`): ReActNet-A's signs at 512 channels, two lanes, 10-bit and three
    thresholds a channel."""
    from qonnx.core.datatype import DataType

    from hwgen.units.thresholding import Thresholding

    rng = np.random.default_rng(0)
    units = {}
    for channels, pe, idt, steps in [(512, 1, "INT8", 1), (512, 2, "INT8", 1), (256, 1, "INT9", 1), (128, 1, "INT8", 3)]:
        dtype = DataType[idt]
        thr = np.sort(rng.integers(dtype.min(), dtype.max(), (channels, steps)), axis=1)
        out = DataType["BIPOLAR"] if steps == 1 else DataType["UINT2"]
        units[f"c{channels}-pe{pe}-{idt}-t{steps}"] = Thresholding(channels, pe, dtype, thr, out, 0, pixels=4,
                                                                   thresholds_in_luts=True)
    return units


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n == "c512-pe1-INT8-t1" else pytest.mark.slow)
                                  for n in threshold_roms_in_luts()])
def test_threshold_rom_in_luts_estimates_match_yosys(name, tmp_path):
    """A threshold ROM in LUTs as Yosys builds it from logic (`THRESHOLD_ROM_BITS_PER_LUT`)."""
    assert_alone_within_estimates_and_levels(name, threshold_roms_in_luts()[name], tmp_path)


def window_generators() -> dict[str, SlidingWindow]:
    """Window generators of the shapes the zoo makes beyond CNV's (padding, stride 2, several pieces
    per beat, positions of 16 to 18 bits, one window per frame)."""
    from qonnx.core.datatype import DataType

    bipolar, int8 = DataType["BIPOLAR"], DataType["INT8"]
    pad1 = (1, 1, 1, 1)
    # (in_h, in_w, channels, kernel, stride, pads (t, l, b, r), SIMD, in = out type, pad value, MMV)
    shapes = {
        "cnv-first": (32, 32, 3, 3, 1, (0, 0, 0, 0), 3, int8, 0, 1),  # 11 levels before pipelining
        "rgb-stem": (224, 224, 3, 3, 2, pad1, 3, int8, 0, 3),  # a kernel row per beat
        "padded-112": (112, 112, 32, 3, 1, pad1, 32, bipolar, -1, 1),
        "stride2-folds": (56, 56, 128, 3, 2, pad1, 16, bipolar, -1, 1),
        "stride2-rows": (28, 28, 64, 3, 2, pad1, 64, bipolar, -1, 3),
        "one-window": (3, 3, 256, 3, 1, (0, 0, 0, 0), 8, bipolar, -1, 1),  # the 3x3 on a 3x3 map
    }
    return {name: SlidingWindow(h, w, c, k, k, s, s, *pads, simd, dt, dt, pad, mmv)
            for name, (h, w, c, k, s, pads, simd, dt, pad, mmv) in shapes.items()}


@pytest.mark.parametrize("name", list(window_generators()))
def test_window_generator_estimates_and_levels(name, tmp_path):
    """Each alone through Yosys (xc7): its estimates as the others', and at most `MAX_LOGIC_LEVELS`."""
    assert_alone_within_estimates_and_levels(name, window_generators()[name], tmp_path)


@pytest.mark.parametrize("data_bits, words", [(64, 32768), (128, 37)])
def test_dram_reader_estimates_and_levels(data_bits, words, tmp_path):
    """The DRAM reader of a deep image on a Zynq-7000's 64-bit port and a short one on an
    UltraScale+'s 128-bit port: LUT RAM FIFO, the address in registered halves."""
    from hwgen.units.dram_reader import DramReader

    unit = DramReader(np.zeros(words * data_bits // 8, np.uint8), data_bits, 4096)
    assert_alone_within_estimates_and_levels(f"DramReader_{data_bits}", unit, tmp_path)


@pytest.mark.parametrize("shape", [pytest.param((144, 16, 4, 72), id="pe4-simd72"),
                                   pytest.param((576, 64, 16, 72), id="pe16-simd72", marks=pytest.mark.slow)])
def test_ternary_window_mvu_estimates_and_levels(shape, tmp_path):
    """A padded binary 3x3 convolution's MVU: {-1, 0, +1} windows x +-1 weights as a popcount per
    lane and the beat's nonzero count (ReActNet-A's 14x14 layers on the ZCU104 fold to PE 16,
    SIMD 72: Yosys 2,871 LUTs, where the adder trees of two-bit picks took 5,792)."""
    from qonnx.core.datatype import DataType

    from hwgen.units.mvu import MVU, accumulator_dtype

    mw, mh, pe, simd = shape
    ternary, bipolar = DataType["TERNARY"], DataType["BIPOLAR"]
    w = np.random.default_rng(0).choice([-1, 1], size=(mw, mh))
    unit = MVU(mw, mh, pe, simd, ternary, bipolar, w, None, accumulator_dtype(ternary, bipolar, w), 0,
               vectors_per_frame=196)
    assert_alone_within_estimates_and_levels(f"MVU_ternary_{pe}x{simd}", unit, tmp_path)


@pytest.mark.parametrize("shape", [pytest.param((512, 256, 8, 64, 49, 64, "BINARY"), id="7x7-64bit"),
                                   pytest.param((1152, 128, 4, 128, 196, 128, "BINARY"), id="14x14-3x3-128bit",
                                                marks=pytest.mark.slow),
                                   pytest.param((1152, 128, 16, 72, 196, 128, "TERNARY"), id="14x14-3x3-padded-pe16",
                                                marks=pytest.mark.slow),
                                   pytest.param((1152, 128, 16, 72, 196, 128, "BINARY"), id="14x14-3x3-pe16",
                                                marks=pytest.mark.slow),
                                   pytest.param((1152, 128, 4, 128, 196, 128, "BINARY", 1), id="14x14-3x3-one-bank",
                                                marks=pytest.mark.slow),
                                   pytest.param((512, 256, 8, 64, 49, 64, "BINARY", 1), id="7x7-one-bank")])
def test_dram_mvu_estimates_and_levels(shape, tmp_path):
    """A weight-stationary MVU of a 7x7 stage (a 1x1 convolution) and of a 14x14 one (a 3x3
    convolution's windows; padded: {-1, 0, +1} windows x +-1 weights, ReActNet-A's folding on the
    ZCU104): buffers in block RAM (at 14x14, deep: Yosys reads them through muxes across 13 and
    7 blocks), the reader, the on-chip MVU's dot products; and with one bank of input and output."""
    from qonnx.core.datatype import DataType

    from hwgen.units.dram_mvu import DramMVU
    from hwgen.units.mvu import accumulator_dtype

    mw, mh, pe, simd, vectors, bus, inputs, banks = (*shape, 2)[:8]
    rng = np.random.default_rng(0)
    if inputs == "BINARY":
        idt = wdt = DataType["BINARY"]
        w = rng.integers(0, 2, (mw, mh))
    else:
        idt, wdt = DataType[inputs], DataType["BIPOLAR"]
        w = rng.choice([-1, 1], (mw, mh))
    unit = DramMVU(mw, mh, pe, simd, idt, wdt, w, None, accumulator_dtype(idt, wdt, w), 0, vectors, bus, 4096,
                   banks=banks)
    assert_alone_within_estimates_and_levels(f"DramMVU_{mw}x{mh}", unit, tmp_path)


@pytest.mark.parametrize("shape", [pytest.param((7, 512, 1, 256, 8, 64, 64), id="7x7-1x1"),
                                   pytest.param((14, 128, 3, 128, 4, 64, 128), id="14x14-3x3", marks=pytest.mark.slow)])
def test_frame_mvu_estimates_and_levels(shape, tmp_path):
    """A weight-stationary convolution over a held image: a 7x7 stage's 1x1 layer and a 14x14
    stage's padded 3x3 one (the window walk, the image's banks, the reader, the dot products)."""
    from qonnx.core.datatype import DataType

    from hwgen.units.frame_mvu import FrameMVU
    from hwgen.units.mvu import accumulator_dtype

    size, channels, kernel, mh, pe, simd, bus = shape
    b, pad = DataType["BINARY"], kernel // 2
    w = np.random.default_rng(0).integers(0, 2, (kernel * kernel * channels, mh))
    unit = FrameMVU(size, size, channels, kernel, kernel, 1, 1, pad, pad, pad, pad, mh, pe, simd, b, b, b, w, None,
                    accumulator_dtype(b, b, w), data_bits=bus, offset=4096)
    assert_alone_within_estimates_and_levels(f"FrameMVU_{size}x{size}x{channels}_{kernel}x{kernel}", unit, tmp_path)


@pytest.mark.parametrize("shape", [pytest.param((98, 128, 4, 1, 32), id="98x128-to-channel-major"),
                                   pytest.param((49, 1024, 16, 64, 1), id="7x7x1024-to-channel-last",
                                                marks=pytest.mark.slow),
                                   pytest.param((196, 256, 4, 1, 64), id="14x14x256-to-channel-major",
                                                marks=pytest.mark.slow)])
def test_reorder_estimates_and_levels(shape, tmp_path):
    """A frame between channel orders: two banks of 8-bit frames deep in block RAM (25 blocks deep
    at 14x14x256: the read mux a tree of 4:1 muxes), the two sides' counters."""
    from qonnx.core.datatype import DataType

    from hwgen.units.reorder import Reorder

    pixels, channels, pe, groups_in, groups_out = shape
    unit = Reorder(pixels, channels, pe, DataType["INT8"], groups_in, groups_out)
    assert_alone_within_estimates_and_levels(f"Reorder_{pixels}x{channels}", unit, tmp_path)


@pytest.mark.parametrize("dtype, elems, bus, depth", [
    pytest.param("INT8", 1, 64, 20_000, id="8bit-64bus"),  # a ReActNet-A shortcut at 14x14 on the PYNQ-Z2
    pytest.param("UINT4", 3, 128, 500, id="12bit-128bus"),
])
def test_dram_fifo_estimates_and_levels(dtype, elems, bus, depth, tmp_path):
    """A FIFO spilled to DRAM: its buffers in LUT RAM, packing and unpacking, the ring's counters
    and address adders."""
    from qonnx.core.datatype import DataType

    from hwgen.units.dram_fifo import DramFifo

    unit = DramFifo(DataType[dtype], elems, 100_352, depth, bus, 0, 200)
    assert unit.est_brams() == 0
    assert_alone_within_estimates_and_levels(f"DramFifo_{dtype}_{bus}", unit, tmp_path)


def lut_product_mvus() -> dict[str, object]:
    """MVUs whose multi-bit products are built in LUTs (`products_in_luts`, where DSPs run short):
    ABC-Net's multi-level INT6 x INT5, a stem's UINT8 x INT8 and a downsampling 1x1 convolution's
    INT8 x INT8, small in the default run and at the ImageNet networks' foldings with `-m slow`."""
    import numpy as np
    from qonnx.core.datatype import DataType as D

    from hwgen.units.mvu import MVU, accumulator_dtype, accumulator_range

    # (MW, MH, PE, SIMD, input, weights, thresholds per neuron (0: none), output, out_bias)
    shapes = {
        "abc-small": (64, 16, 2, 8, D["INT6"], D["INT5"], 3, D["INT2"], -2),
        "stem-small": (49, 8, 2, 7, D["UINT8"], D["INT8"], 0, None, 0),
        "abc-pe4-simd16": (576, 64, 4, 16, D["INT6"], D["INT5"], 0, None, 0),
        "stem-pe8-simd21": (147, 64, 8, 21, D["UINT8"], D["INT8"], 0, None, 0),
        "downsample-pe4-simd32": (64, 128, 4, 32, D["INT8"], D["INT8"], 0, None, 0),
    }
    rng = np.random.default_rng(0)
    units = {}
    for name, (mw, mh, pe, simd, idt, wdt, steps, odt, bias) in shapes.items():
        w = rng.integers(int(wdt.min()), int(wdt.max()) + 1, (mw, mh))
        thr = None
        if steps:
            lo, hi = accumulator_range(idt, wdt, w)
            thr = np.sort(rng.integers(lo, hi + 1, (mh, steps)), axis=1)
        else:
            odt = accumulator_dtype(idt, wdt, w)
        units[name] = MVU(mw, mh, pe, simd, idt, wdt, w, thr, odt, bias, vectors_per_frame=4, products_in_luts=True)
    return units


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if "small" in n else pytest.mark.slow)
                                  for n in lut_product_mvus()])
def test_lut_product_estimates_match_yosys(name, tmp_path):
    """Products in LUTs: no DSP in Yosys's netlist, LUTs within the share, levels within bounds."""
    assert_alone_within_estimates_and_levels(name, lut_product_mvus()[name], tmp_path)


def packed_product_mvus() -> dict[str, object]:
    """Stems whose UINT8 pixels x INT8 weights go two to a DSP (`MVU.packed_products`): small in
    the default run, at Bi-Real-18's folding on the Ultra96-V2 with `-m slow`."""
    import numpy as np
    from qonnx.core.datatype import DataType as D

    from hwgen.units.mvu import MVU, accumulator_dtype

    rng = np.random.default_rng(0)
    units = {}
    for name, (mw, mh, pe, simd) in {"stem-small": (49, 8, 2, 7), "stem-pe8-simd21": (147, 64, 8, 21)}.items():
        w = rng.integers(-128, 128, (mw, mh))
        units[name] = MVU(mw, mh, pe, simd, D["UINT8"], D["INT8"], w, None, accumulator_dtype(D["UINT8"], D["INT8"], w),
                          vectors_per_frame=4, packed_products=True)
    return units


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if "small" in n else pytest.mark.slow)
                                  for n in packed_product_mvus()])
def test_packed_product_estimates_match_yosys(name, tmp_path):
    """Two products to a DSP: Yosys maps one DSP a pair (half the lanes' products), LUTs within
    the share, levels within bounds."""
    unit = packed_product_mvus()[name]
    assert unit.est_dsps() == unit.PE * unit.SIMD // 2
    assert_alone_within_estimates_and_levels(name, unit, tmp_path)

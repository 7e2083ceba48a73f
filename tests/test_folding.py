"""Automatic folding: window generators that emit several window pieces per clock (MMV) lift the
one-pixel-fold-per-clock ceiling, exact in rtlsim at the estimated rate; a target the pipeline
cannot reach is said (a warning line and `report.json` `target`) and the units are folded for
the reachable rate; `--target-fps max` is the fastest folding that fits the part."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwgen.builder import build
from hwgen.cli import main
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.parts import lookup_part
from hwgen.simulate import run_input_model, simulate_build
from hwgen.transforms.hardware.set_folding import MAX_LUT_SHARE
from hwgen.models.bnn_pynq import bnn_pynq_model
from hwgen.models.convnet import BnnConvNet, ConvSpec, randomize_conv


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory):
    """3 channels of 10 x 10 pixels, a 3x3 convolution to 8 channels, a 3x3 one to 8: the first
    window generator sees 100 input beats but would send 576 window pieces of 3 channels."""
    net = randomize_conv(BnnConvNet(3, (10, 10), [ConvSpec(8, 3, 1, 0, False), ConvSpec(8, 3, 1, 0, False)]),
                         seed=4)
    path = tmp_path_factory.mktemp("conv") / "conv.onnx"
    export_brevitas(net, (1, 3, 10, 10)).save(str(path))
    return path


def layer(report: dict, name: str) -> dict:
    return next(entry for entry in report["layers"] if entry["name"] == name)


def test_several_window_pieces_per_clock_exact_at_the_input_rate(conv_onnx, tmp_path, verilator_cache):
    out = tmp_path / "build"
    report = build(conv_onnx, out, BuildConfig(target_cycles=100, cache_dir=verilator_cache))
    first = layer(report, "SlidingWindow_0")
    assert (first["SIMD"], first["MMV"]) == (3, 9)  # a whole window per beat: 64 beats, 100 in
    assert first["est_cycles"] == 100
    assert report["target"] == {"cycles": 100, "reached_cycles": 100, "met": True, "limited_by": "SlidingWindow_0",
                                "binds": None, "part": "xc7z020", "fits": True, "over": {}}
    x = np.random.default_rng(0).random((6, 3, 10, 10)).astype(np.float32)
    expected = run_input_model(out, x)
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=1, cache_dir=verilator_cache)
        assert np.array_equal(y, expected), stall
        if stall == 0.0:
            assert stats["cycles_per_frame"] == 100


def test_unreachable_target_is_said_and_folded_for_the_reachable_rate(conv_onnx, tmp_path, capsys):
    code = main(["build", str(conv_onnx), "-o", str(tmp_path / "fast"), "--target-cycles", "10"])
    assert code == 0
    err = capsys.readouterr().err.strip().splitlines()
    warning = [line for line in err if line.startswith("warning: target")]
    assert len(warning) == 1, err
    assert "10 cycles/frame" in warning[0] and "SlidingWindow_0 needs 100 cycles/frame" in warning[0]
    report = json.loads((tmp_path / "fast" / "report.json").read_text())
    assert report["target"] == {"cycles": 10, "reached_cycles": 100, "met": False, "limited_by": "SlidingWindow_0",
                                "binds": None, "part": "xc7z020", "fits": True, "over": {}}
    # the same hardware as asked for the reachable rate, not more
    assert main(["build", str(conv_onnx), "-o", str(tmp_path / "reachable"), "--target-cycles", "100"]) == 0
    reachable = json.loads((tmp_path / "reachable" / "report.json").read_text())
    assert report["layers"] == reachable["layers"]


def test_fastest_folding_that_fits_the_part(tmp_path, capsys):
    """TFC-W1A1 fully parallel (one frame per clock) needs some 59k LUTs: on the xc7z010 the
    fastest folding that fits is slower, and one that fits."""
    path = tmp_path / "tfc.onnx"
    export_brevitas(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28)).save(str(path))
    code = main(["build", str(path), "-o", str(tmp_path / "b"), "--target-fps", "max", "--part", "xc7z010"])
    assert code == 0
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["target"]["cycles"] is None and report["target"]["met"] is True
    part = lookup_part("xc7z010")
    compute = [entry for entry in report["layers"] if entry["op"] in ("MVU", "Thresholding", "LabelSelect")]
    assert sum(entry["est_luts"] for entry in compute) <= MAX_LUT_SHARE * part.luts
    assert sum(entry["est_brams"] for entry in compute) <= part.bram18
    assert 1 < report["target"]["reached_cycles"] < 64  # faster than finn-examples' folding
    # what stops a faster one: its LUTs beyond the compute units' share of the part
    binds = report["target"]["binds"]
    assert (binds["resource"], binds["have"]) == ("LUTs", round(MAX_LUT_SHARE * part.luts)), binds
    assert binds["need"] > binds["have"] and binds["faster_cycles"] < report["target"]["reached_cycles"]
    assert binds["text"].startswith("LUTs: the next faster folding ("), binds
    out = capsys.readouterr().out
    assert f"the fastest folding that fits the xc7z010; faster binds on {binds['text']}\n" in out, out
    toml = (tmp_path / "b" / "build.toml").read_text()
    assert 'target_fps = "max"' in toml and 'part = "xc7z010"' in toml


@pytest.fixture(scope="module")
def too_big_onnx(tmp_path_factory):
    """784-2048-2048-10 binary weights: 5.8 Mbit, where the xc7z010 has 2.2 Mbit of block RAM and
    17,600 LUTs (a LUT holds 64 bits of ROM): no folding of it fits, in block RAM or in LUTs."""
    from hwgen.models.mlp import BnnMlp, randomize

    path = tmp_path_factory.mktemp("big") / "big.onnx"
    export_brevitas(randomize(BnnMlp(hidden=(2048, 2048)), seed=2), (1, 1, 28, 28)).save(str(path))
    return path


def test_fastest_folding_when_nothing_fits_is_one_error(too_big_onnx, tmp_path, capsys):
    """`--target-fps max` on a part no folding fits: one line naming the resource that binds, what
    the slowest folding needs of it and what the part has; exit 2 and no build folder."""
    out = tmp_path / "b"
    assert main(["build", str(too_big_onnx), "-o", str(out), "--target-fps", "max", "--part", "xc7z010"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--target-fps max: no folding fits the xc7z010" in err, err
    # the nearest miss within the part's LUTs: 5.8 Mbit of weights in 361 BRAM18 of 120
    assert "needs 320 BRAM18 for its compute units, where the part has 120" in err, err
    assert not out.exists() and not list(tmp_path.glob(".b.building-*"))


def test_a_target_that_does_not_fit_is_not_met(too_big_onnx, tmp_path, capsys):
    """A rate asked for that does not fit the part: built (its estimates are what the user asked
    for), one warning naming what it needs beyond the part, and `met` false."""
    out = tmp_path / "b"
    assert main(["build", str(too_big_onnx), "-o", str(out), "--target-cycles", "100000", "--part", "xc7z010"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "does not fit the xc7z010" in warnings[0], warnings
    target = json.loads((out / "report.json").read_text())["target"]
    assert (target["met"], target["fits"], target["part"]) == (False, False, "xc7z010")
    assert target["over"] and all(o["needed"] > o["part"] for o in target["over"].values())


def test_bad_target_fps_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["build", "m.onnx", "-o", str(tmp_path / "o"), "--target-fps", "fast"])
    assert exc.value.code == 2
    assert "not a frame rate or 'max'" in capsys.readouterr().err


def test_block_ram_is_a_constraint_not_a_price():
    """Folding spends LUTs least while the design's block RAM fits the part: two shallow weight
    ROMs that each fit in block RAM but not both, and that save about the same LUTs per BRAM (so
    one price flips them together): the one that saves more goes to block RAM, the other to LUTs."""
    from hwgen.parts import Part
    from hwgen.transforms.hardware.set_folding import Option, SetFolding

    part = Part("test", "xc7", luts=53200, ffs=106400, bram36=75, dsp=220)  # 150 BRAM18
    options = {
        "a": [Option({"weights_in_luts": 1}, None, 100, (12096, 0, 0)), Option({"weights_in_luts": 0}, None, 100, (8000, 114, 0))],
        "b": [Option({"weights_in_luts": 1}, None, 100, (9072, 0, 0)), Option({"weights_in_luts": 0}, None, 100, (6000, 86, 0))],
        "c": [Option({"PE": 1}, None, 200, (50, 0, 0)), Option({"PE": 2}, None, 100, (90, 0, 0))],
    }
    chosen, _ = SetFolding(100, part)._fold(options, 100)
    assert {name: o.knobs for name, o in chosen.items()} == {
        "a": {"weights_in_luts": 0}, "b": {"weights_in_luts": 1}, "c": {"PE": 2}}
    roomy = Part("test", "xc7", luts=53200, ffs=106400, bram36=140, dsp=220)
    chosen, _ = SetFolding(100, roomy)._fold(options, 100)
    assert chosen["a"].knobs == chosen["b"].knobs == {"weights_in_luts": 0}  # block RAM is free


def test_block_ram_is_freed_unit_by_unit_where_no_price_fits():
    """Ten like weight memories, 13 BRAM18 or 2,000 LUTs each: at every price of the ladder they
    all stay in block RAM (130 BRAM18 where the xc7z010 has 120) or all go to LUTs (20,000 where
    it has 17,600). Folding frees block RAM one unit at a time from the nearest miss: one of them
    goes to LUTs and the design fits. A unit whose only cheaper-in-block-RAM folding is too slow
    keeps its folding."""
    from hwgen.transforms.hardware.set_folding import Option, SetFolding

    part = lookup_part("xc7z010")
    options = {f"m{i}": [Option({"weights_in_luts": 0}, None, 100, (0, 13, 0)),
                         Option({"weights_in_luts": 1}, None, 100, (2000, 0, 0))] for i in range(10)}
    options["slow"] = [Option({"PE": 1}, None, 400, (10, 0, 0)), Option({"PE": 4}, None, 100, (40, 1, 0))]
    chosen, _ = SetFolding(100, part)._fold(options, 100)
    assert sorted(o.resources for o in chosen.values()) == [(0, 13, 0)] * 9 + [(40, 1, 0), (2000, 0, 0)]
    assert sum(o.resources[1] for o in chosen.values()) == 118 <= part.bram18


def test_the_fastest_folding_leaves_the_spilled_fifos_their_bandwidth():
    """FIFOs spilled to DRAM take 200 bytes a frame where the DRAM carries a byte a clock: a
    folding of 100 cycles per frame would leave them 100, so folding takes the one of 400, and
    says that their bandwidth is what stops the faster one."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model
    from onnx import helper

    from hwgen.transforms.hardware.set_folding import DramBudget, FoldLimit, Option, SetFolding

    options = {"u": [Option({"PE": 1}, None, 400, (5, 0, 0)), Option({"PE": 4}, None, 100, (10, 0, 0))]}
    empty = ModelWrapper(qonnx_make_model(helper.make_graph([], "g", [], [])))
    dram = DramBudget(100.0, 100.0, 1, 64, reserved_bytes=200)
    folding = SetFolding(None, lookup_part("xc7z020"), options, dram=dram)
    assert folding.choose(empty)["u"].cycles == 400
    assert folding.limit == FoldLimit("DRAM MB/s", 200.0, 100.0, 100, fifo_mbytes_per_s=200.0)
    assert folding.limit.describe(100.0) == ("DRAM bandwidth: the next faster folding (1,000,000 FPS) would move "
                                             "200 MB/s through DRAM (200 of it the FIFOs spilled there), where the "
                                             "board carries 100")


def test_luts_left_to_rings_in_dram_are_named_where_nothing_fits():
    """LUTs that FIFOs spilled to DRAM take beyond plumbing's share come off the compute units';
    where the slowest folding does not fit then, the error says so."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model
    from onnx import helper

    from hwgen.errors import HwgenError
    from hwgen.transforms.hardware.set_folding import Option, SetFolding

    options = {"u": [Option({"PE": 1}, None, 400, (20_000, 0, 0))]}
    empty = ModelWrapper(qonnx_make_model(helper.make_graph([], "g", [], [])))
    assert SetFolding(None, lookup_part("xc7z020"), options).choose(empty)["u"].cycles == 400
    with pytest.raises(HwgenError, match=r"needs 20,000 LUTs for its compute units, where the part has 15,220 \(85% of "
                                         r"its LUTs less 30,000 that plumbing takes beyond the rest, with FIFOs in DRAM\)"):
        SetFolding(None, lookup_part("xc7z020"), options, reserved_luts=30_000).choose(empty)


def test_deep_narrow_weights_take_a_shape_that_ultraram_holds():
    """On a part with UltraRAM whose block RAM the rest of the design fills, a classifier's 8-bit
    weights (1024 x 1000, 8.2 Mbit) folded one MAC per clock would be 1,024,000 words of 8 bits:
    501 BRAM18, or 250 URAM288 (a URAM is 72 bits wide whatever the words), too few BRAMs saved
    per URAM to go there. Folding prices URAMs too: the weights take a wider shape that UltraRAM
    holds in few URAMs, and the block RAM fits."""
    from qonnx.core.datatype import DataType

    from hwgen.fit import uram_choice
    from hwgen.parts import PARTS
    from hwgen.transforms.hardware.set_folding import SetFolding, options_of
    from hwgen.units.datapath import memory_bram18, uram_count
    from hwgen.units.mvu import MVU

    rng = np.random.default_rng(0)
    int8, binary = DataType["INT8"], DataType["BINARY"]
    classifier = MVU(1024, 1000, 1, 1, int8, int8, rng.integers(-128, 128, (1024, 1000)), None, DataType["INT32"])
    # a binary layer whose shallow, wide weights UltraRAM would hold no better (144 BRAM18 each)
    wide = MVU(4608, 512, 8, 576, binary, binary, rng.integers(0, 2, (4608, 512)), None, DataType["INT16"])
    fixed = [o for o in options_of(wide) if o.knobs == {"PE": 8, "SIMD": 576, "weights_in_luts": 0}]
    options = {"classifier": options_of(classifier), **{f"wide{i}": fixed for i in range(3)}}
    part = PARTS["xczu7ev"]
    folding = SetFolding(1_024_000, part)
    chosen, _ = folding._fold(options, 1_024_000)
    memory = chosen["classifier"].unit.ram_weight_memories()[0]
    assert memory[1] >= 32 and uram_count(*memory) <= 63
    assert uram_choice([memory], part.uram) == [True]
    in_block_ram = 3 * 144 + chosen["classifier"].resources[1] - memory_bram18(*memory)
    assert folding._block_ram(chosen) == in_block_ram <= part.bram18


def test_choosing_a_folding_without_rewriting_the_graph_gives_the_built_units(tmp_path):
    """A sweep over targets reads `SetFolding.choose` and `placed` instead of rewriting a graph per
    target: the same units, estimate for estimate, as FOLD's rewritten graph, on a part with
    UltraRAM and one without, with the weights where each mode puts them."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hwgen.ops import unit_of
    from hwgen.transforms.hardware.choose_weight_memories import placed
    from hwgen.transforms.hardware.set_folding import SetFolding, fold_options
    from hwgen.transforms.pipeline import FOLD, apply_all

    path = tmp_path / "tfc.onnx"
    export_brevitas(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28)).save(str(path))
    build(path, tmp_path / "b", BuildConfig(target_fps=1000))
    hardware = ModelWrapper(str(tmp_path / "b" / "graphs" / "04_to_hardware.onnx"))
    options = fold_options(hardware)

    def estimates(units):
        return [(type(u).__name__, u.est_cycles(), u.est_luts(), u.est_brams(), u.est_urams(), u.est_dsps(),
                 bool(getattr(u, "weights_loaded", False))) for u in units]

    loaded = set()
    for part, mode in (("xczu7ev", "auto"), ("xczu7ev", "loaded"), ("xc7z020", "auto")):
        for cycles in (16, 400, 20_000):
            cfg = BuildConfig(target_cycles=cycles, part=part, weight_memory=mode)
            folded = apply_all(hardware, FOLD(cfg, options))
            built = [unit_of(folded, n) for n in folded.graph.node]
            chosen = SetFolding(cycles, lookup_part(part), options).choose(hardware)
            units = placed([chosen[n.name].unit if n.name in chosen else unit_of(hardware, n)
                            for n in hardware.graph.node], mode, lookup_part(part))
            assert estimates(units) == estimates(built), (part, mode, cycles)
            loaded |= {e[-1] for e in estimates(built)}
    assert loaded == {True, False}


def test_products_move_to_luts_only_where_the_dsps_run_short():
    """Two 8-bit layers folded to 32 cycles take 32 DSPs each at least. On a part with 220 DSPs
    they keep them; with 48, folding builds one layer's products in LUTs (the one that costs
    fewer LUTs per DSP freed) and the design fits; the graph's MVU then carries the knob."""
    from qonnx.core.datatype import DataType

    from hwgen.parts import Part
    from hwgen.transforms.hardware.set_folding import SetFolding, options_of
    from hwgen.units.mvu import MVU, accumulator_dtype

    rng = np.random.default_rng(0)
    int8 = DataType["INT8"]
    units = {}
    for name, mw in (("wide", 64), ("narrow", 32)):
        w = rng.integers(-128, 128, (mw, 32))
        units[name] = MVU(mw, 32, 1, 1, int8, int8, w, None, accumulator_dtype(int8, int8, w))
    options = {name: options_of(unit) for name, unit in units.items()}
    roomy = Part("test", "xc7", luts=53200, ffs=106400, bram36=140, dsp=220)
    chosen, _ = SetFolding(64, roomy)._fold(options, 64)
    assert all("products_in_luts" not in o.knobs for o in chosen.values())
    assert sum(o.resources[2] for o in chosen.values()) == 32 + 16
    short = Part("test", "xc7", luts=53200, ffs=106400, bram36=140, dsp=40)
    chosen, _ = SetFolding(64, short)._fold(options, 64)
    in_luts = {name for name, o in chosen.items() if o.knobs.get("products_in_luts")}
    assert in_luts == {"narrow"} and sum(o.resources[2] for o in chosen.values()) == 32
    assert chosen["narrow"].unit.products_in_luts and chosen["narrow"].resources[0] > options["narrow"][0].resources[0]


def test_a_stems_products_go_two_to_a_dsp_where_the_dsps_run_short():
    """A stem (UINT8 pixels x INT8 weights) at PE 8 x SIMD 21 takes 168 DSPs. On a part with 100,
    folding packs two of its products to a DSP (84: far fewer LUTs per DSP freed than building
    them in LUTs); with 50, packing cannot free enough and they go to LUTs."""
    from qonnx.core.datatype import DataType

    from hwgen.parts import Part
    from hwgen.transforms.hardware.set_folding import SetFolding, options_of
    from hwgen.units.mvu import MVU, accumulator_dtype

    uint8, int8 = DataType["UINT8"], DataType["INT8"]
    w = np.random.default_rng(0).integers(-128, 128, (147, 64))
    stem = MVU(147, 64, 1, 1, uint8, int8, w, None, accumulator_dtype(uint8, int8, w), vectors_per_frame=4)
    options = {"stem": [o for o in options_of(stem) if o.knobs == {"PE": 8, "SIMD": 21, "weights_in_luts": 0}]}

    def fold(dsps: int):
        part = Part("test", "xc7", luts=53200, ffs=106400, bram36=140, dsp=dsps)
        return SetFolding(224, part)._fold(options, 224)[0]["stem"]

    assert fold(220).resources[2] == 168 and not fold(220).unit.packed_products
    packed = fold(100)
    assert packed.knobs["packed_products"] == 1 and packed.unit.packed_products and packed.resources[2] == 84
    assert packed.resources[0] < options["stem"][0].resources[0] + 84 * 20
    in_luts = fold(50)
    assert in_luts.unit.products_in_luts and not in_luts.unit.packed_products and in_luts.resources[2] == 0


def test_weights_that_ultraram_holds_are_not_moved_to_dram_for_block_ram():
    """Where block RAM runs short on a part with UltraRAM, what moving a layer's weights to DRAM
    frees is what the design's block RAM loses without the layer, UltraRAM taking what it will
    (not the layer's BRAM18s as if UltraRAM held nothing): a 7x7-stage layer of Bi-Real-18
    (4608 x 512 binary weights in a 4096-deep memory: 128 BRAM18 as block RAM, 8 URAMs) stays in
    UltraRAM, and a 14x14-stage one (1024 x 576: 32 BRAM18, 8 URAMs if it took them) goes to
    DRAM. Ranked by its block RAM before UltraRAM, the 7x7 layer went to DRAM and left the
    UltraRAM empty, and the KV260 missed 1,000 FPS."""
    from qonnx.core.datatype import DataType

    from hwgen.parts import Part
    from hwgen.transforms.hardware.set_folding import DramBudget, SetFolding, options_of

    rng = np.random.default_rng(0)
    binary = DataType["BINARY"]

    def fixed(mw: int, mh: int, pe: int, simd: int, vectors: int) -> list:
        from hwgen.units.mvu import MVU

        unit = MVU(mw, mh, 1, 1, binary, binary, rng.integers(0, 2, (mw, mh)), None, DataType["INT16"],
                   vectors_per_frame=vectors)
        return [o for o in options_of(unit) if o.knobs == {"PE": pe, "SIMD": simd, "weights_in_luts": 0}]

    options = {"stage7": fixed(4608, 512, 8, 72, 49), "stage14": fixed(2304, 256, 8, 72, 196)}
    assert options["stage7"][0].ram_weights == ((4096, 576),) and options["stage7"][0].resources[1] == 130
    assert options["stage14"][0].resources[1] == 34
    part = Part("test", "xcup", luts=117_120, ffs=234_240, bram36=15, dsp=1_248, uram=8)  # 30 BRAM18, URAMs for one layer
    dram = DramBudget(9_600.0, 200.0, 4, 128)
    folding = SetFolding(210_000, part, options, dram=dram)
    chosen = folding._pick(options, 210_000, (1.0, 0.0, 1.0, 0.0))
    assert chosen["stage7"].dram_bytes == 0 and chosen["stage14"].dram_bytes > 0
    assert folding._block_ram(chosen) <= part.bram18

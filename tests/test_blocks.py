"""The building blocks of ReActNet, Bi-Real Net and BinaryDenseNet (models/blocks.py) built and run
in Verilator: bit-exact with Brevitas and with the exported model on 32 inputs, also with random
stalls on both ends, and stall-free at exactly the rate of the slowest unit (its estimate).

Every step of the lowering is checked too (each ONNX checkpoint against the model as given), and
the padded convolutions are looked at on their own at the border pixels, where a wrong pad value
would show first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.simulate import check_checkpoints, run_input_model, simulate_build
from hwgen.models.blocks import (
    BiRealBlock, BiRealDownsampleBlock, BlockNet, DenseLayer, DenseTransition, ReActNetBlock, randomize_block,
)

FRAMES = 32
TARGET_CYCLES = 2048

BLOCKS = {
    "reactnet_normal": lambda pow2: ReActNetBlock(8, 8, 1, pow2_scales=pow2),
    "reactnet_reduction": lambda pow2: ReActNetBlock(8, 16, 2, pow2_scales=pow2),
    "bireal": lambda pow2: BiRealBlock(8, pow2_scales=pow2),
    "bireal_downsample": lambda pow2: BiRealDownsampleBlock(8, 16, pow2_scales=pow2),
    "dense_layer": lambda pow2: DenseLayer(8, 8, pow2_scales=pow2),
    "dense_transition": lambda pow2: DenseTransition(16, 8, pow2_scales=pow2),
}
#: power-of-two scales for every block; float scales (integer coefficients found for each join)
#: for a residual and a concatenating block in the default run, the rest with -m slow
CASES = [pytest.param(name, True, id=f"{name}-pow2") for name in BLOCKS] + [
    pytest.param(name, False, id=f"{name}-float",
                 marks=() if name in ("bireal", "dense_layer", "reactnet_normal") else pytest.mark.slow)
    for name in BLOCKS
]


def built_block(name: str, pow2: bool, out: Path, cache: Path, **cfg) -> tuple[torch.nn.Module, dict]:
    net = randomize_block(BlockNet(BLOCKS[name](pow2), BLOCKS[name](pow2).in_channels, 8), seed=0)
    path = out.parent / f"{out.name}.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    report = build(path, out, BuildConfig(target_cycles=TARGET_CYCLES, cache_dir=cache, **cfg))
    return net, report


@pytest.mark.parametrize("name, pow2", CASES)
def test_block_bit_exact_with_stalls_and_at_full_rate(name, pow2, tmp_path, verilator_cache):
    out = tmp_path / "build"
    net, report = built_block(name, pow2, out, verilator_cache)
    x = np.random.default_rng(1).random((FRAMES, *net.input_shape[1:])).astype(np.float32)
    with torch.no_grad():
        brevitas = net(torch.from_numpy(x)).numpy()
    exported = run_input_model(out, x)
    assert all(same for _, same in check_checkpoints(out, x[:8]))
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=3, cache_dir=verilator_cache)
        assert np.array_equal(y, exported), f"rtlsim differs from the exported model (stall {stall})"
        assert np.array_equal(y, brevitas), f"rtlsim differs from Brevitas (stall {stall})"
        if stall == 0.0:
            slowest = report["totals"]["max_est_cycles"]
            assert stats["cycles_per_frame"] == slowest, (stats, slowest)
    ops = {layer["op"] for layer in report["layers"]}
    assert "DuplicateStreams" in ops or name == "dense_transition"
    assert ops & {"AddStreams", "ConcatStreams"} or name == "dense_transition"


def test_padded_convolution_border_pixels(tmp_path, verilator_cache):
    """Bi-Real's branch is a padded 3x3 binary convolution on a sign activation: its border pixels
    see the zero padding (a {-1, 0, +1} window stream). Only the border of the block's output is
    compared here, and it holds varied values, so the check is not vacuous."""
    out = tmp_path / "build"
    net, _ = built_block("bireal", True, out, verilator_cache)
    x = np.random.default_rng(2).random((FRAMES, 8, 8, 8)).astype(np.float32)
    y, _ = simulate_build(out, x, cache_dir=verilator_cache)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    border = np.zeros((8, 8), bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    assert np.array_equal(y[:, :, border], want[:, :, border])
    assert np.unique(want[:, :, border]).size > 10


def _shortcut_fifo(out: Path) -> str:
    """The FIFO between the fork and the join: the shortcut of the residual."""
    streams = json.loads((out / "accelerator.json").read_text())["streams"]
    into = {s["consumer"]: s["producer"] for s in streams}
    return next(s["producer"] for s in streams if (s["consumer"] or "").startswith("AddStreams")
                and s["producer"].startswith("StreamingFifo")
                and (into.get(s["producer"]) or "").startswith("DuplicateStreams"))


def test_fifo_depths_in_the_report_and_an_undersized_shortcut_deadlocks(tmp_path, verilator_cache, capsys):
    """The measured shortcut FIFO is deep (it holds what the window generator takes in before
    the branch answers) and in report.json; forced to 2 through the folding file, rtlsim stops
    within its idle bound and `hwgen sim` names the stuck streams in one line, exit status 2."""
    from hwgen.cli import main

    out = tmp_path / "sized"
    net, report = built_block("bireal", True, out, verilator_cache)
    fifo = _shortcut_fifo(out)
    depth = next(layer["depth"] for layer in report["layers"] if layer["name"] == fifo)
    assert depth > 8
    small = tmp_path / "small"
    built_block("bireal", True, small, verilator_cache, folding={fifo: {"depth": 2}})
    assert next(layer["depth"] for layer in json.loads((small / "report.json").read_text())["layers"]
                if layer["name"] == fifo) == 2
    x = np.random.default_rng(3).random((4, 8, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = main(["sim", str(small), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"),
                 "--cache-dir", str(verilator_cache)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "deadlock" in err and fifo in err and "DuplicateStreams" in err, err


def _join_depths(report: dict, out: Path) -> dict[str, int]:
    """Depth of every FIFO that feeds a join, by name."""
    streams = json.loads((out / "accelerator.json").read_text())["streams"]
    joins = {s["producer"] for s in streams if (s["consumer"] or "").startswith(("AddStreams", "ConcatStreams"))}
    return {layer["name"]: layer["depth"] for layer in report["layers"] if layer["name"] in joins}


@pytest.mark.parametrize("name", ["reactnet_reduction", "bireal", "dense_layer"])
def test_modelled_fifo_depths_cover_the_measured_ones(name, tmp_path, verilator_cache):
    """FIFOs sized without simulation (what ImageNet builds use) are at least as deep as a
    Verilator run measures at every join, and the block built with them is bit-exact with
    stalls and runs stall-free at the rate of its slowest unit."""
    measured_out, modelled_out = tmp_path / "measured", tmp_path / "modelled"
    net, measured = built_block(name, True, measured_out, verilator_cache, fifo_sizing="measured")
    _, modelled = built_block(name, True, modelled_out, verilator_cache, fifo_sizing="modelled")
    assert (measured["fifo_sizing"], modelled["fifo_sizing"]) == ("measured", "modelled")
    want, got = _join_depths(measured, measured_out), _join_depths(modelled, modelled_out)
    assert want.keys() == got.keys() and len(want) >= 2
    assert all(got[f] >= want[f] for f in want), (got, want)
    assert any(want[f] > 8 for f in want)  # a shortcut that really has to wait
    x = np.random.default_rng(5).random((8, *net.input_shape[1:])).astype(np.float32)
    with torch.no_grad():
        brevitas = net(torch.from_numpy(x)).numpy()
    for stall in (0.0, 0.3):
        y, stats = simulate_build(modelled_out, x, stall_prob=stall, seed=2, cache_dir=verilator_cache)
        assert np.array_equal(y, brevitas), f"stall {stall}"
        if stall == 0.0:
            assert stats["cycles_per_frame"] == modelled["totals"]["max_est_cycles"]


def test_every_checkpoint_is_valid_onnx(tmp_path, verilator_cache):
    """Each step's graph opens in ONNX tools (Netron, onnx.checker) as well as in QONNX: every
    custom domain it uses is declared, node and tensor names are readable, unit parameters are
    attributes."""
    import onnx

    out = tmp_path / "build"
    built_block("reactnet_reduction", True, out, verilator_cache)
    for path in sorted((out / "graphs").glob("*.onnx")) + [out / "host_pre.onnx", out / "host_post.onnx"]:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        if path.name >= "04":
            assert all(n.name and n.name[0].isalpha() for n in model.graph.node), path.name
    mvu = next(n for n in onnx.load(str(out / "graphs" / "06_plumbing.onnx")).graph.node if n.op_type == "MVU")
    assert {"PE", "SIMD", "MW", "MH"} <= {a.name for a in mvu.attribute}
    x = np.random.default_rng(0).random((2, *BlockNet(BLOCKS["reactnet_reduction"](True), 8, 8).input_shape[1:]))
    assert all(same for _, same in check_checkpoints(out, x.astype(np.float32)))

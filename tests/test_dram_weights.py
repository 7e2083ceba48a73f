"""Builds whose weights stream from DRAM (`--weight-memory dram`): the MVUs become weight-stationary
`DramMVU`s sharing the top's read masters, `rtl/dram.bin` holds their images, and rtlsim with the
bench's DRAM (latency, bursts, back-pressure) is bit-exact with the model, with and without
stalls. What is refused is said in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hwgen.builder import build
from hwgen.cli import main
from hwgen.config import BuildConfig
from hwgen.errors import HwgenError
from hwgen.frontend import export_brevitas
from hwgen.models.bnn_pynq import bnn_pynq_model
from hwgen.models.zoo import export, network
from hwgen.simulate import run_input_model, simulate_build


@pytest.fixture(scope="module")
def tfc_dram(tmp_path_factory, verilator_cache):
    """TFC-W1A1 aimed at 64 cycles per frame with its weights in DRAM: folding takes weight words
    of whole 64-bit bus words for every layer (the first PE 8 x SIMD 112, 14 bus words)."""
    tmp = tmp_path_factory.mktemp("tfc_dram")
    export_brevitas(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28)).save(str(tmp / "tfc.onnx"))
    report = build(tmp / "tfc.onnx", tmp / "b", BuildConfig(target_cycles=64, weight_memory="dram",
                                                           cache_dir=verilator_cache))
    return tmp / "b", report


def test_tfc_with_weights_in_dram_is_the_model(tfc_dram, verilator_cache):
    out, report = tfc_dram
    ops = {layer["name"]: layer["op"] for layer in report["layers"] if "MVU" in layer["op"]}
    assert set(ops.values()) == {"DramMVU"}
    assert report["dram"]["bytes_per_frame"] == (784 * 64 + 2 * 64 * 64 + 64 * 10) // 8  # each weight once
    # the images at 4 KB boundaries: 6,272 + 512 + 512 + 80 bytes at 0, 8 K, 12 K, 16 K
    assert (out / "rtl" / "dram.bin").stat().st_size == 16384 + 80
    assert json.loads((out / "accelerator.json").read_text())["dram_bytes"] == 16384 + 80
    x = np.random.default_rng(0).uniform(-1, 1, (6, 1, 28, 28)).astype(np.float32)
    expected = run_input_model(out, x)
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=1, cache_dir=verilator_cache)
        assert np.array_equal(y, expected), stall
        if stall == 0.0:  # the first layer's 6,272 bytes over a 64-bit bus: 784 cycles, not 64
            assert stats["cycles_per_frame"] == 784 and report["totals"]["max_est_cycles"] == 785


def test_a_missing_or_short_dram_image_is_one_error(tfc_dram, tmp_path, verilator_cache):
    import shutil

    out, _ = tfc_dram
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    x = np.zeros((1, 1, 28, 28), np.float32)
    image = copy / "rtl" / "dram.bin"
    image.write_bytes(image.read_bytes()[:-8])
    with pytest.raises(HwgenError, match=r"holds 16456 bytes, the design's DRAM image has 16464"):
        simulate_build(copy, x, cache_dir=verilator_cache)
    image.unlink()
    with pytest.raises(HwgenError, match=r"dram.bin: no such file: the design reads its weights from the DRAM image"):
        simulate_build(copy, x, cache_dir=verilator_cache)


def test_dram_weights_for_a_board_are_refused_until_the_board_flow_exists(tmp_path, capsys):
    path = tmp_path / "tfc.onnx"
    export_brevitas(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28)).save(str(path))
    code = main(["build", str(path), "-o", str(tmp_path / "b"), "--weight-memory", "dram", "--board", "pynq-z2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "weight_memory: weights in DRAM are simulated" in err and "build without --board" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("name, cycles", [
    pytest.param("reactnet-a", 34_765, id="reactnet-a", marks=pytest.mark.slow),
    pytest.param("bireal-18", None, id="bireal-18", marks=pytest.mark.slow),
    pytest.param("binarydensenet-28", None, id="binarydensenet-28", marks=pytest.mark.slow),
    pytest.param("abcnet-18-m3n3", None, id="abcnet-18-m3n3", marks=pytest.mark.slow),
])
def test_small_config_with_weights_in_dram_is_brevitas(name, cycles, tmp_path, verilator_cache):
    """A zoo network's small config with every binary layer's weights in DRAM (ReActNet: 15
    readers on three masters), bit-exact with Brevitas with and without stalls."""
    net = network(name, "small", seed=0)
    path = export(name, tmp_path / f"{name}.onnx", "small", seed=0)
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=20_000, weight_memory="dram", fifo_sizing="modelled",
                                          cache_dir=verilator_cache))
    assert sum(layer["op"] == "DramMVU" for layer in report["layers"]) >= 4
    x = np.random.default_rng(2).random((4, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        brevitas = net(torch.from_numpy(x)).numpy()
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=4, cache_dir=verilator_cache)
        assert np.array_equal(y, brevitas), stall
        if stall == 0.0 and cycles is not None:
            # single-buffered weight-stationary units hand frames to each other: 6 % over the
            # slowest unit's estimate (double output buffers would close it; see the note in
            # docs/architecture.md)
            assert stats["cycles_per_frame"] == cycles and report["totals"]["max_est_cycles"] == 32_775

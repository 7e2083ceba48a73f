"""Estimated cycles == simulated cycles: TFC-W1A1 at two foldings runs in rtlsim at the largest
per-layer estimate of report.json exactly, i.e. the stitched pipeline never stalls."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.simulate import simulate_build
from hwgen.models.bnn_pynq import bnn_pynq_model


@pytest.fixture(scope="module")
def tfc_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("tfc") / "tfc_w1a1.onnx"
    export_brevitas(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28)).save(str(path))
    return path


@pytest.mark.parametrize("target_cycles", [1024, 4096])
def test_tfc_cycles_match_estimate(target_cycles, tfc_onnx, tmp_path, verilator_cache):
    out = tmp_path / "build"
    report = build(tfc_onnx, out, BuildConfig(target_cycles=target_cycles, cache_dir=verilator_cache))
    x = np.random.default_rng(0).random((24, 1, 28, 28)).astype(np.float32)
    simulate_build(out, x, cache_dir=verilator_cache)
    sim = json.loads((out / "sim.json").read_text())
    assert set(sim) >= {"cycles_per_frame", "latency_cycles", "frames"}
    estimate = report["totals"]["max_est_cycles"]
    assert estimate <= target_cycles
    assert sim["cycles_per_frame"] == estimate, (sim, estimate)


def test_every_fifo_depth_is_reported(tfc_onnx, tmp_path, verilator_cache):
    report = build(tfc_onnx, tmp_path / "b", BuildConfig(target_cycles=1024, cache_dir=verilator_cache))
    fifos = [layer for layer in report["layers"] if layer["op"] == "StreamingFifo"]
    assert fifos and all(layer["depth"] == 2 for layer in fifos)
    assert all(layer["depth"] is None for layer in report["layers"] if layer["op"] != "StreamingFifo")

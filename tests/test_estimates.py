"""Estimates that folding and the parts table rely on, against Yosys `synth_xilinx` (xc7z020), unit
by unit: LUTs within 15 % (plus `SLACK_LUTS` = 24 for units of a few dozen LUTs, where one LUT is
several per cent), 18 Kb block RAMs (a RAMB36 counting two) within 15 % plus one, DSPs exactly.
TFC-W1A1 at two foldings in the default run; CNV-W1A1 at two foldings with `-m slow` (synthesis
of its units takes minutes)."""

from __future__ import annotations

import pytest

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.synth import synthesize
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

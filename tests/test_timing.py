"""Levels of logic by Yosys (`ltp` after `synth_xilinx`, `logic_levels` in the report) of whole
designs: every unit of CNV-W1A1 at 12,200 FPS and of a ReActNet-A block at ImageNet width (512
channels) at or below `MAX_LOGIC_LEVELS`, the depth the clocks of the parts rely on
(docs/architecture.md, "Timing"); slow (Yosys takes 5 and 15 minutes). Units alone, in the default
run, are held to it beside their estimates in `tests/test_estimates.py`."""

from __future__ import annotations

import pytest

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.synth import MAX_LOGIC_LEVELS, synthesize


def deep_units(report: dict) -> list[str]:
    return [f"{layer['name']}: {layer['synth']['logic_levels']}" for layer in report["layers"]
            if layer["synth"]["logic_levels"] > MAX_LOGIC_LEVELS]


@pytest.mark.slow
def test_cnv_at_12200_fps_levels(tmp_path, verilator_cache):
    from hwgen.models.cnv import cnv_w1a1, with_fixed_batchnorm_statistics

    path = tmp_path / "cnv.onnx"
    export_brevitas(with_fixed_batchnorm_statistics(cnv_w1a1(), seed=0), (1, 3, 32, 32)).save(str(path))
    build(path, tmp_path / "build", BuildConfig(target_fps=12200, cache_dir=verilator_cache))
    assert deep_units(synthesize(tmp_path / "build", jobs=2)) == []


@pytest.mark.slow
def test_reactnet_block_at_imagenet_width_levels(tmp_path, verilator_cache):
    from hwgen.models.blocks import BlockNet, ReActNetBlock
    from hwgen.models.zoo import randomize

    net = BlockNet(ReActNetBlock(512, 512, 1), 512, 4)
    randomize(net, seed=0)
    path = tmp_path / "block.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    build(path, tmp_path / "build", BuildConfig(target_cycles=4096, cache_dir=verilator_cache))
    # the 7-series mapping: Yosys leaves a DSP48E2's post-adder (a Requantize's offset) in CARRY4
    # chains, where Vivado and Yosys's DSP48E1 mapping pack it into the DSP
    assert deep_units(synthesize(tmp_path / "build", jobs=2)) == []

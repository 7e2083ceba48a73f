"""FIFOs at joins spilled to DRAM (`--fifo-memory`): a ReActNet block whose shortcut FIFOs hold their
beats in rings of DRAM is bit-exact in rtlsim, with and without stalls on every stream and on
the DRAM, and runs within 1 % of its slowest unit's estimate; "auto" spills only what block
RAM cannot hold, the largest first, and only for a fixed target."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.errors import HwgenError
from hwgen.frontend import export_brevitas
from hwgen.models.blocks import BlockNet, ReActNetBlock, randomize_block
from hwgen.simulate import run_input_model, simulate_build

TARGET_CYCLES = 2048


@pytest.fixture(scope="module")
def block_onnx(tmp_path_factory):
    """A ReActNet normal block, 8 channels, power-of-two scales: its 8-bit shortcuts sit beside a
    3x3 window generator and beside the RPReLU's requantization."""
    net = randomize_block(BlockNet(ReActNetBlock(8, 8, 1, pow2_scales=True), 8, 8), seed=0)
    path = tmp_path_factory.mktemp("block") / "block.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    return path, net.input_shape


@pytest.mark.parametrize("masters", [None, 1])  # a master each; both on one, through the arbiters
def test_shortcuts_in_dram_are_bit_exact_at_the_units_rate(block_onnx, masters, tmp_path, verilator_cache):
    path, shape = block_onnx
    out = tmp_path / "b"
    report = build(path, out, BuildConfig(target_cycles=TARGET_CYCLES, fifo_memory="dram", fifo_sizing="modelled",
                                          dram_read_masters=masters, cache_dir=verilator_cache))
    accelerator = json.loads((out / "accelerator.json").read_text())
    assert accelerator["dram_masters"] == (masters or 2)
    assert report["dram"]["fifos"] == ["DramFifo_2", "DramFifo_14"]
    assert (out / "rtl" / "dram.bin").stat().st_size == (512 + 128) * 8  # rings of 512 and 128 64-bit words
    # each beat written and read once, 7 of 8 bits to a 64-bit word: 74 words of 512 beats each way
    assert report["dram"]["bytes_per_frame"] == report["dram"]["fifo_bytes_per_frame"] == 2 * 2 * 74 * 8
    x = np.random.default_rng(1).random((16, *shape[1:])).astype(np.float32)
    expected = run_input_model(out, x)
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=2, cache_dir=verilator_cache)
        assert np.array_equal(y, expected), stall
        if stall == 0.0:  # a join waits on a ring's DRAM round trip now and then: a few cycles a frame
            assert report["totals"]["max_est_cycles"] == TARGET_CYCLES
            assert stats["cycles_per_frame"] == pytest.approx(TARGET_CYCLES, rel=0.01)


def test_auto_spills_what_block_ram_cannot_hold(block_onnx, tmp_path, verilator_cache):
    """The shortcut FIFO made deep by hand (4,096 beats: 2 BRAM18) on a part one BRAM18 short:
    "auto" spills it alone, for a fixed target; for the fastest folding that fits, the build
    decides (`hwgen.builder`)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hwgen.fit import part_fit
    from hwgen.ops import unit_of
    from hwgen.parts import Part
    from hwgen.transforms.hardware.spill_fifos import SpillFifos
    from hwgen.transforms.pipeline import apply_all

    path, _ = block_onnx
    out = tmp_path / "b"
    build(path, out, BuildConfig(target_cycles=TARGET_CYCLES, fifo_memory="chip", fifo_sizing="modelled",
                                 folding={"StreamingFifo_2": {"depth": 4096}}, cache_dir=verilator_cache))
    plumbed = ModelWrapper(str(next((out / "graphs").glob("*_plumbing.onnx"))))
    units = [unit_of(plumbed, n) for n in plumbed.graph.node]
    need = part_fit(units, TARGET_CYCLES, Part("any", "xc7", 53200, 106400, 140, 220))["est_bram18"]
    assert unit_of(plumbed, next(n for n in plumbed.graph.node if n.name == "StreamingFifo_2")).est_brams() == 2

    def spilled(bram18: int, fixed: bool) -> list[str]:
        part = Part("short", "xc7", 53200, 106400, bram18 // 2, 220)
        model = apply_all(plumbed, [SpillFifos("auto", part, 64, fixed)])
        return [n.name for n in model.graph.node if n.op_type == "DramFifo"]

    enough = need + need % 2  # a whole number of BRAM36
    assert spilled(enough - 2, True) == ["DramFifo_2"]
    assert spilled(enough - 2, False) == []
    assert spilled(enough, True) == []
    assert need == 2 and spilled(0, True) == ["DramFifo_2"]  # the FIFO is all the block RAM there is


def test_fifo_memory_is_checked():
    with pytest.raises(HwgenError, match="fifo_memory: must be one of auto, chip, dram, got 'ram'"):
        BuildConfig(fifo_memory="ram")


def test_a_board_build_with_shortcuts_in_dram_deploys_and_runs(block_onnx, tmp_path, verilator_cache):
    """For the PYNQ-Z2: each ring on a master of its own, which writes as well as reads: the
    shell's ports carry the write channels at the bus width, the Tcl passes the structural run,
    and the driver against the simulated fabric (its DRAM written and read back) gives the
    model's outputs, with stalls."""
    from hwgen.deploy.checks import run_tcl_skeleton, shell_ports
    from hwgen.deploy.sim_pynq import simulated_accelerator

    path, shape = block_onnx
    out = tmp_path / "b"
    build(path, out, BuildConfig(target_cycles=TARGET_CYCLES, fifo_memory="dram", board="pynq-z2",
                                 fifo_sizing="modelled", cache_dir=verilator_cache))
    info = json.loads((out / "accelerator.json").read_text())
    assert info["dram_masters"] == 2 and info["dram_writers"] == [0, 1]
    ports = shell_ports((out / "vivado" / "src" / "hwgen_dma_shell.v").read_text())
    for k in range(2):
        assert ports[f"m_axi_dram{k}_awaddr"] == ("output", 32) and ports[f"m_axi_dram{k}_wdata"] == ("output", 64)
        assert ports[f"m_axi_dram{k}_wstrb"] == ("output", 8) and ports[f"m_axi_dram{k}_bvalid"] == ("input", 1)
    assert run_tcl_skeleton(out / "vivado" / "build.tcl")
    x = np.random.default_rng(3).random((5, *shape[1:])).astype(np.float32)
    acc = simulated_accelerator(out / "deploy", batch_size=2, stall_prob=0.2, seed=4, cache_dir=verilator_cache)
    assert json.loads((out / "deploy" / "accelerator.json").read_text())["dram"]["align"] == info["dram_align"]
    assert np.array_equal(acc.execute(x), run_input_model(out, x))


def test_the_fastest_folding_spills_the_fifos_no_folding_leaves_room_for(block_onnx, tmp_path, verilator_cache):
    """A shortcut FIFO made deeper by hand than the Ultra96-V2's block RAM (120,000 beats of 64
    bits at the fastest foldings: 470 BRAM18 of its 432): no folding leaves it its block RAM. With
    `--fifo-memory chip` the build stops saying so; with `auto` (the default) `--target-fps max`
    puts the FIFOs at joins in block RAM that the part cannot hold into DRAM (this one alone),
    leaving the DRAM their bandwidth, and the design fits."""
    path, _ = block_onnx
    options = dict(target_fps="max", board="ultra96-v2", fifo_sizing="modelled",
                   folding={"StreamingFifo_2": {"depth": 120_000}}, cache_dir=verilator_cache)
    with pytest.raises(HwgenError, match=r"no folding leaves its FIFOs their block RAM: at the slowest, the compute "
                                         r"units take \d+ BRAM18 and the FIFOs [\d,]+, where the xczu3eg has 432"):
        build(path, tmp_path / "chip", BuildConfig(fifo_memory="chip", **options))
    report = build(path, tmp_path / "auto", BuildConfig(**options))
    assert report["dram"]["fifos"] == ["DramFifo_2"]  # the other shortcut's fits beside the compute units
    assert report["target"]["fits"] and report["dram"]["mbytes_per_s"] <= report["dram"]["available_mbytes_per_s"]
    assert next(layer["depth"] for layer in report["layers"] if layer["name"] == "DramFifo_2") == 120_000

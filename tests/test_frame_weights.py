"""`--weight-memory frame`: convolutions that read their weights from DRAM once a frame over their
image held on chip (`hwgen.units.frame_mvu`), channel-major between them, reordered where a unit
needs another order (`hwgen.transforms.hardware.use_frame_mvus`): rtlsim equals Brevitas bit for
bit with and without stalls (on every stream and the DRAM), a frame in the slowest unit's
estimate."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from tests.test_dram_weights import assert_rtlsim_is_brevitas


def block_build(tmp_path, channels: int, size: int, stride: int, cycles: int, cache) -> tuple:
    from hwgen.models.blocks import BlockNet, ReActNetBlock
    from hwgen.models.zoo import randomize

    net = BlockNet(ReActNetBlock(channels, channels * stride, stride), channels, size)
    randomize(net, seed=0)
    path = tmp_path / "block.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=cycles, weight_memory="frame", fifo_sizing="modelled",
                                          cache_dir=cache))
    return net, out, report


def ops(report: dict, op: str) -> list[str]:
    return [layer["name"] for layer in report["layers"] if layer["op"] == op]


def test_a_normal_block_reads_its_weights_once_a_frame(tmp_path, verilator_cache):
    """A ReActNet normal block (16 channels, 8x8): both binary convolutions are FrameMVUs, the
    stream between them channel-major (the second takes the first's groups, narrower than its
    SIMD, into its image's words); a Reorder only where the block's input meets the first
    convolution's output at the join, and where the output goes back to the host."""
    net, out, report = block_build(tmp_path, 16, 8, 1, 4096, verilator_cache)
    assert ops(report, "FrameMVU") == ["ConvMVU_0", "ConvMVU_1"] and not ops(report, "DramMVU")
    assert ops(report, "Reorder") == ["Reorder_HostToChannelsLast_0_4", "Reorder_StreamToChannelsLast_0_1"]
    assert report["dram"]["bytes_per_frame"] == 16 * 16 * 10 // 8  # the 3x3 and the 1x1 weights, once
    x = np.random.default_rng(5).random((3, *net.input_shape[1:])).astype(np.float32)
    assert assert_rtlsim_is_brevitas(net, out, report, x, verilator_cache) == 2305  # the 3x3's 4 x 64 x 9 + 1


def test_a_reduction_block_reorders_its_pooled_shortcut_and_its_concat(tmp_path, verilator_cache):
    """A ReActNet reduction block (16 -> 32 channels, 8x8, stride 2): the pooled shortcut goes
    channel-major to meet the strided convolution, the two 1x1 branches go back to channel-last
    for the concat."""
    net, out, report = block_build(tmp_path, 16, 8, 2, 4096, verilator_cache)
    assert len(ops(report, "FrameMVU")) == 3 and len(ops(report, "Reorder")) == 3
    x = np.random.default_rng(6).random((3, *net.input_shape[1:])).astype(np.float32)
    assert_rtlsim_is_brevitas(net, out, report, x, verilator_cache)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reactnet-a", "bireal-18", "binarydensenet-28", "abcnet-18-m3n3"])
def test_small_config_with_frame_weights_is_brevitas(name, tmp_path, verilator_cache):
    """A zoo network's small config with every binary convolution over its image held on chip
    (ReActNet: 14 of them and 17 reorders, at its concats and pooled shortcuts), bit-exact with
    Brevitas with and without stalls, a frame in its slowest unit's estimate."""
    from hwgen.models.zoo import export, network

    net = network(name, "small", seed=0)
    path = export(name, tmp_path / f"{name}.onnx", "small", seed=0)
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=20_000, weight_memory="frame", fifo_sizing="modelled",
                                          cache_dir=verilator_cache))
    assert len(ops(report, "FrameMVU")) >= 6 and not ops(report, "DramFifo")
    x = np.random.default_rng(2).random((4, 3, 32, 32)).astype(np.float32)
    assert_rtlsim_is_brevitas(net, out, report, x, verilator_cache, slack=0.05)


def test_fifos_in_dram_beside_frame_weights_are_refused():
    from hwgen.errors import HwgenError

    with pytest.raises(HwgenError, match="fifo_memory: FIFOs in DRAM beside convolutions that hold their image"):
        BuildConfig(weight_memory="frame", fifo_memory="dram")

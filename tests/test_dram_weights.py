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


def assert_rtlsim_is_brevitas(net, out, report: dict, x: np.ndarray, cache, slack: float = 0.0) -> float:
    """rtlsim of the build in `out` equals Brevitas' `net` on `x`, with and without stalls, and
    without stalls a frame takes the slowest unit's estimate (to within `slack` of it): its cycles."""
    with torch.no_grad():
        brevitas = net(torch.from_numpy(x)).numpy()
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=4, cache_dir=cache)
        assert np.array_equal(y, brevitas), f"rtlsim differs from Brevitas (stall {stall})"
        if stall == 0.0:
            slowest, cycles = report["totals"]["max_est_cycles"], stats["cycles_per_frame"]
            assert slowest <= cycles <= (1 + slack) * slowest, (cycles, slowest)
    return cycles


@pytest.fixture(scope="module")
def tfc_dram(tmp_path_factory, verilator_cache):
    """TFC-W1A1 aimed at 64 cycles per frame with its weights in DRAM: folding takes weight words
    of whole 64-bit bus words for every layer (the first PE 8 x SIMD 112, 14 bus words)."""
    tmp = tmp_path_factory.mktemp("tfc_dram")
    export_brevitas(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28)).save(str(tmp / "tfc.onnx"))
    report = build(tmp / "tfc.onnx", tmp / "b", BuildConfig(target_cycles=64, weight_memory="dram",
                                                           cache_dir=verilator_cache))
    return tmp / "b", report


#: TFC with every layer in DRAM on one read master: the bus words of all four images, one a clock
#: (the arbiter turns from one reader's bursts to the next's without a gap)
SHARED_MASTER_CYCLES = 922


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
            assert stats["cycles_per_frame"] == 784 == report["totals"]["max_est_cycles"]


def test_readers_sharing_one_master_are_the_model(tmp_path, verilator_cache):
    """TFC's four weight-stationary layers on one read master (`dram_read_masters=1`: an arbiter
    takes their bursts in turn): the model with and without stalls, the frame now bound by the
    one port carrying every layer's weights (922 bus words a frame, where three masters took 784)."""
    export_brevitas(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28)).save(str(tmp_path / "tfc.onnx"))
    out = tmp_path / "b"
    build(tmp_path / "tfc.onnx", out, BuildConfig(target_cycles=64, weight_memory="dram", dram_read_masters=1,
                                                  cache_dir=verilator_cache))
    assert json.loads((out / "accelerator.json").read_text())["dram_masters"] == 1
    x = np.random.default_rng(0).uniform(-1, 1, (6, 1, 28, 28)).astype(np.float32)
    expected = run_input_model(out, x)
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=1, cache_dir=verilator_cache)
        assert np.array_equal(y, expected), stall
        if stall == 0.0:
            assert stats["cycles_per_frame"] == SHARED_MASTER_CYCLES


def test_more_read_masters_than_the_board_has_is_one_error():
    with pytest.raises(HwgenError, match=r"^dram_read_masters: the board pynq-z2 has 2 DRAM ports for read masters, "
                                         r"asked for 3$"):
        BuildConfig(board="pynq-z2", dram_read_masters=3)
    with pytest.raises(HwgenError, match=r"^dram_read_masters: must be at least 1, got 0$"):
        BuildConfig(dram_read_masters=0)


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


@pytest.fixture(scope="module")
def wide_mlp(tmp_path_factory):
    """A binary MLP 784-2048-2048-2048-10: 10.1 Mbit of weights, twice the xc7z020's block RAM."""
    from hwgen.models.mlp import BnnMlp, randomize

    path = tmp_path_factory.mktemp("wide_mlp") / "mlp.onnx"
    export_brevitas(randomize(BnnMlp(hidden=(2048, 2048, 2048)), seed=0), (1, 1, 28, 28)).save(str(path))
    return path


def test_auto_streams_from_dram_what_block_ram_cannot_hold(wide_mlp, tmp_path, verilator_cache):
    """`--weight-memory auto` (the default) for the PYNQ-Z2 at the fastest rate that fits: with
    every weight on chip nothing fits; the layers that save the most block RAM per DRAM byte read
    their weights from DRAM, within the board's bandwidth, and the design fits. rtlsim is the
    model, and a frame takes its slowest unit's estimate exactly."""
    with pytest.raises(HwgenError, match=r"no folding fits the xc7z020: even the slowest .* needs 548 BRAM18"):
        build(wide_mlp, tmp_path / "rom", BuildConfig(board="pynq-z2", target_fps="max", weight_memory="rom",
                                                      fifo_sizing="modelled", cache_dir=verilator_cache))
    out = tmp_path / "auto"
    report = build(wide_mlp, out, BuildConfig(board="pynq-z2", clock_mhz=100.0, target_fps="max",
                                              fifo_sizing="modelled", cache_dir=verilator_cache))
    ops = {layer["name"]: layer["op"] for layer in report["layers"] if "MVU" in layer["op"]}
    assert ops == {"MVU_0": "DramMVU", "MVU_1": "DramMVU", "MVU_2": "MVU", "MVU_3": "MVU"}
    z2 = report["parts"][0]
    assert z2["part"] == "xc7z020" and z2["fits"] and z2["est_bram18"] <= 280
    dram = report["dram"]
    assert dram["bytes_per_frame"] == (784 * 2048 + 2048 * 2048) // 8  # whole bus words: no padding
    assert dram["mbytes_per_s"] <= dram["available_mbytes_per_s"] == pytest.approx(1492.4)
    assert report["totals"]["max_est_cycles"] == 65536  # 1,526 FPS at 100 MHz
    # a faster folding needs more block RAM than the part has, even with its weights in DRAM
    assert report["target"]["binds"]["resource"] == "BRAM18", report["target"]["binds"]
    x = np.random.default_rng(0).integers(0, 256, (3, 1, 28, 28)).astype(np.float32)
    expected = run_input_model(out, x)
    for stall in (0.0, 0.2):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=2, cache_dir=verilator_cache)
        assert np.array_equal(y, expected), stall
        if stall == 0.0:
            assert stats["cycles_per_frame"] == 65536


def test_folding_leaves_block_ram_to_the_fifos(wide_mlp, tmp_path, verilator_cache):
    """Block RAM reserved for the FIFOs (what a build folding for the fastest rate learns from
    its first plumbing) is kept from the compute units; where nothing fits without it, the error
    says what was reserved."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hwgen.parts import lookup_part
    from hwgen.transforms.hardware.set_folding import SetFolding
    from hwgen.transforms.pipeline import dram_budget

    out = tmp_path / "b"
    cfg = BuildConfig(board="pynq-z2", target_fps="max", fifo_sizing="modelled", cache_dir=verilator_cache)
    build(wide_mlp, out, cfg)
    hardware = ModelWrapper(str(out / "graphs" / "04_to_hardware.onnx"))
    part = lookup_part("xc7z020")
    for reserved in (0, 100):
        folding = SetFolding(None, part, dram=dram_budget(cfg), reserved_bram18=reserved)
        assert folding._block_ram(folding.choose(hardware)) <= 280 - reserved
    with pytest.raises(HwgenError, match=r"needs \d+ BRAM18 for its compute units, where the part has 5 "
                                         r"\(less 275 that the FIFOs take\)"):
        SetFolding(None, part, dram=dram_budget(cfg), reserved_bram18=275).choose(hardware)
    # the most any folding leaves to the FIFOs: the part's block RAM less what the slowest folding
    # takes (what a build whose FIFOs outgrow a fast folding's room falls back to), to the BRAM18
    least = SetFolding(None, part, dram=dram_budget(cfg)).least_block_ram(hardware)
    assert 0 < least < 100
    SetFolding(None, part, dram=dram_budget(cfg), reserved_bram18=280 - least).choose(hardware)
    with pytest.raises(HwgenError, match=rf"needs {least} BRAM18 for its compute units, where the part has "
                                         rf"{least - 1} \(less {281 - least} that the FIFOs take\)"):
        SetFolding(None, part, dram=dram_budget(cfg), reserved_bram18=281 - least).choose(hardware)


def test_the_fastest_folding_says_what_stops_a_faster_one(wide_mlp):
    """`SetFolding.limit` of the fastest folding that fits: the block RAM at the PYNQ-Z2's DRAM
    bandwidth (no DRAM would let the next faster folding fit), the DRAM where it carries less
    (what the next faster folding would read, against what the DRAM carries)."""
    from dataclasses import replace

    from hwgen.frontend import load_onnx, prepare
    from hwgen.parts import lookup_part
    from hwgen.transforms.hardware.set_folding import FoldLimit, SetFolding
    from hwgen.transforms.partition import split_host_and_accelerator
    from hwgen.transforms.pipeline import STREAMLINE, TO_HARDWARE, apply_all, dram_budget

    hardware = apply_all(split_host_and_accelerator(apply_all(prepare(load_onnx(wide_mlp)), STREAMLINE)).accel,
                         TO_HARDWARE)
    part, dram = lookup_part("xc7z020"), dram_budget(BuildConfig(board="pynq-z2", target_fps="max"))
    board = SetFolding(None, part, dram=dram)
    assert max(o.cycles for o in board.choose(hardware).values()) == 65536
    # the next faster: a DramMVU of 57,344 steps, one more to start its pass
    assert board.limit == FoldLimit("BRAM18", 461, 280, faster_cycles=57345)
    slow = SetFolding(None, part, dram=replace(dram, mbytes_per_s=600.0))
    cycles = max(o.cycles for o in slow.choose(hardware).values())
    assert cycles == 131072 and slow.limit == FoldLimit("DRAM MB/s", 632.1, 600.0, faster_cycles=114689)
    assert slow.limit.describe(100.0) == ("DRAM bandwidth: the next faster folding (872 FPS) would read 632 MB/s "
                                          "of weights from DRAM, where the board carries 600 (block RAM holds the rest)")


def test_auto_keeps_on_chip_what_fits(tiny_mlp_onnx, tmp_path, verilator_cache):
    report = build(tiny_mlp_onnx, tmp_path / "b", BuildConfig(board="pynq-z2", target_fps="max",
                                                             fifo_sizing="modelled", cache_dir=verilator_cache))
    assert "DramMVU" not in {layer["op"] for layer in report["layers"]} and report["dram"]["bytes_per_frame"] == 0


@pytest.fixture(scope="module")
def tfc_dram_deploy(tmp_path_factory, verilator_cache):
    """TFC-W1A1 with its weights in DRAM built for the PYNQ-Z2 (two DRAM ports: two read masters)."""
    tmp = tmp_path_factory.mktemp("tfc_dram_deploy")
    export_brevitas(bnn_pynq_model("TFC_1W1A").eval(), (1, 1, 28, 28)).save(str(tmp / "tfc.onnx"))
    build(tmp / "tfc.onnx", tmp / "b", BuildConfig(target_cycles=64, weight_memory="dram", board="pynq-z2",
                                                   fifo_sizing="modelled", cache_dir=verilator_cache))
    return tmp / "b"


def test_the_driver_places_the_dram_image_and_runs_the_model(tfc_dram_deploy, verilator_cache):
    """The driver allocates the image, fills it, writes its address into DRAM_BASE; the simulated
    fabric reads its weights from that buffer at that address: the model's outputs, with stalls."""
    from hwgen.deploy.sim_pynq import simulated_accelerator

    out = tfc_dram_deploy
    assert json.loads((out / "accelerator.json").read_text())["dram_masters"] == 2
    x = np.random.default_rng(3).uniform(-1, 1, (5, 1, 28, 28)).astype(np.float32)
    expected = run_input_model(out, x)
    acc = simulated_accelerator(out / "deploy", batch_size=3, stall_prob=0.2, seed=4, cache_dir=verilator_cache)
    image = acc._dram_image
    assert image.physical_address % 4096 == 0 and acc._overlay.registers.dram_base == image.physical_address
    assert bytes(image) == (out / "deploy" / "dram.bin").read_bytes()
    assert np.array_equal(acc.execute(x), expected)


def test_a_missing_or_truncated_dram_image_in_the_deploy_folder_is_one_error(tfc_dram_deploy, tmp_path,
                                                                             verilator_cache):
    import shutil

    from hwgen.deploy.sim_pynq import simulated_accelerator
    from hwgen.driver import DriverError

    deploy = tmp_path / "deploy"
    shutil.copytree(tfc_dram_deploy / "deploy", deploy)
    image = deploy / "dram.bin"
    size = image.stat().st_size
    image.write_bytes(image.read_bytes()[:-1])
    with pytest.raises(DriverError, match=rf"dram.bin: holds {size - 1} bytes, the accelerator's DRAM image has {size}"):
        simulated_accelerator(deploy, build_dir=tfc_dram_deploy, cache_dir=verilator_cache)
    image.unlink()
    with pytest.raises(DriverError, match=r"dram.bin: no such file: the accelerator reads its weights from this DRAM image"):
        simulated_accelerator(deploy, build_dir=tfc_dram_deploy, cache_dir=verilator_cache)


def test_an_image_that_asks_for_a_larger_alignment_slides_up_to_it(tfc_dram_deploy, tmp_path, verilator_cache):
    """A description whose image must start on a multiple of 64 KB (a FIFO's ring in DRAM asks
    for its size): the allocator's pages are not aligned so far, so the driver allocates room,
    places the image on the next multiple and writes that address; the readers find their weights
    there."""
    import shutil

    from hwgen.deploy.sim_pynq import simulated_accelerator

    deploy = tmp_path / "deploy"
    shutil.copytree(tfc_dram_deploy / "deploy", deploy)
    description = json.loads((deploy / "accelerator.json").read_text())
    description["dram"]["align"] = 1 << 16
    (deploy / "accelerator.json").write_text(json.dumps(description))
    acc = simulated_accelerator(deploy, build_dir=tfc_dram_deploy, cache_dir=verilator_cache)
    base, buffer = acc._overlay.registers.dram_base, acc._dram_image
    assert base % (1 << 16) == 0 and buffer.physical_address % (1 << 16) != 0 and base > buffer.physical_address
    start = base - buffer.physical_address
    assert bytes(buffer[start:start + description["dram"]["bytes"]]) == (deploy / "dram.bin").read_bytes()
    x = np.random.default_rng(3).uniform(-1, 1, (2, 1, 28, 28)).astype(np.float32)
    assert np.array_equal(acc.execute(x), run_input_model(tfc_dram_deploy, x))


def test_a_fabric_without_the_base_never_finishes_a_frame(tfc_dram_deploy, verilator_cache):
    """Until DRAM_BASE is written the readers are held: a frame sent then does not come back, and
    the driver's timeout names the channel (as on a board whose bitstream is not this build's)."""
    from hwgen.deploy.sim_pynq import simulated_accelerator
    from hwgen.driver import DriverError

    acc = simulated_accelerator(tfc_dram_deploy / "deploy", timeout_s=0.05, cache_dir=verilator_cache)
    acc._overlay.registers.values.clear()
    with pytest.raises(DriverError, match=r"axi_dma_0: the DMA's send \(MM2S\) channel did not finish within 0.05 s"):
        acc.execute(np.zeros((1, 1, 28, 28), np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reactnet-a", "bireal-18", "binarydensenet-28", "abcnet-18-m3n3"])
def test_small_config_with_weights_in_dram_is_brevitas(name, tmp_path, verilator_cache):
    """A zoo network's small config with every binary layer's weights in DRAM (ReActNet: 15
    readers on three masters), bit-exact with Brevitas with and without stalls, and a frame within
    5 % of its slowest unit's estimate."""
    net = network(name, "small", seed=0)
    path = export(name, tmp_path / f"{name}.onnx", "small", seed=0)
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=20_000, weight_memory="dram", fifo_sizing="modelled",
                                          cache_dir=verilator_cache))
    assert sum(layer["op"] == "DramMVU" for layer in report["layers"]) >= 4
    x = np.random.default_rng(2).random((4, 3, 32, 32)).astype(np.float32)
    assert_rtlsim_is_brevitas(net, out, report, x, verilator_cache, slack=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("channels, size, cycles", [
    pytest.param(512, 14, 300_000, id="reactnet-normal-512ch-14x14"),
    pytest.param(1024, 7, 300_000, id="reactnet-normal-1024ch-7x7"),
])
def test_reactnet_block_at_imagenet_size_with_weights_in_dram(channels, size, cycles, tmp_path, verilator_cache):
    """ReActNet-A's normal block at the sizes of its 14x14 and 7x7 stages (the 3x3 and 1x1 binary
    convolutions: 2.6 Mbit of weights at 512 channels, 10.5 at 1,024), every weight in DRAM:
    rtlsim equals Brevitas bit for bit with and without stalls (on every stream and the DRAM).
    A frame takes the slowest unit's estimate (225,793 cycles for both at the test's folding).
    Run with `-m slow` (3 minutes)."""
    from hwgen.models.blocks import BlockNet, ReActNetBlock
    from hwgen.models.zoo import randomize

    net = BlockNet(ReActNetBlock(channels, channels, 1), channels, size)
    randomize(net, seed=0)
    path = tmp_path / "block.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=cycles, weight_memory="dram", fifo_sizing="modelled",
                                          cache_dir=verilator_cache))
    in_dram = [layer for layer in report["layers"] if layer["op"] == "DramMVU"]
    assert len(in_dram) == 2 and report["dram"]["bytes_per_frame"] == channels * channels * 10 // 8
    x = np.random.default_rng(5).random((2, *net.input_shape[1:])).astype(np.float32)
    assert_rtlsim_is_brevitas(net, out, report, x, verilator_cache, slack=0.05)


@pytest.mark.slow
def test_one_bank_layers_in_dram_are_the_model_and_wait_for_their_neighbours(tmp_path, verilator_cache):
    """ReActNet-A's 1024-channel 7x7 block built for the PYNQ-Z2 at the fastest rate that fits
    (10.5 Mbit of weights: both binary convolutions in DRAM), a hand folding giving both one bank
    of input and output buffers (`DramMVU.banks`, half the block RAM of two). rtlsim is Brevitas,
    with and without stalls; and a frame takes twice the slowest unit's estimate: a pass's input
    and output wait for its compute, and the neighbours, folded for the same rate, take as long
    again. This is why folding does not choose one bank itself."""
    import json

    from hwgen.models.blocks import BlockNet, ReActNetBlock
    from hwgen.models.zoo import randomize

    net = BlockNet(ReActNetBlock(1024, 1024, 1), 1024, 7)
    randomize(net, seed=0)
    path = tmp_path / "block.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    folding = tmp_path / "folding.json"
    folding.write_text(json.dumps({"ConvMVU_0": {"banks": 1}, "ConvMVU_1": {"banks": 1}}))
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(board="pynq-z2", clock_mhz=100.0, target_fps="max", fifo_sizing="modelled",
                                          folding=json.loads(folding.read_text()), cache_dir=verilator_cache))
    assert [layer["op"] for layer in report["layers"] if "MVU" in layer["name"]] == ["DramMVU", "DramMVU"]
    x = np.random.default_rng(5).random((2, *net.input_shape[1:])).astype(np.float32)
    cycles = assert_rtlsim_is_brevitas(net, out, report, x, verilator_cache, slack=1.1)
    assert cycles > 1.9 * report["totals"]["max_est_cycles"]


def fits_as_found(folding, hardware) -> bool:
    """Whether the compute units fit the part at the cycle count the search for the fastest found,
    as folded there (a window generator then takes the folding that is cheapest together with
    the width converter after it, which plumbing counts)."""
    options = folding._options(hardware)
    found = folding._fastest_fitting(options, max(min(o.cycles for o in opts) for opts in options.values()))
    needs = folding._needs(folding._fold(options, found)[0])
    return all(need <= folding._limits()[name] for name, need in needs.items())


@pytest.mark.slow
def test_binarydensenet_37_fits_the_ultra96_v2_with_narrow_dram_foldings(tmp_path):
    """BinaryDenseNet-37 (ImageNet size) on the Ultra96-V2: while the layers in DRAM had to take
    foldings whose weight words fill whole bus words, the slowest folding did not fit and a faster
    one of 7.8 FPS did; with words in slots, narrower foldings stream from DRAM and the fastest
    that fits is 3,161,284 cycles (47.4 FPS), within the part (2 minutes, 1.2 GB)."""
    from qonnx.transformation.general import GiveUniqueNodeNames

    from hwgen.deploy.boards import lookup_board
    from hwgen.frontend import load_onnx, prepare
    from hwgen.parts import lookup_part
    from hwgen.transforms.hardware.set_folding import SetFolding
    from hwgen.transforms.partition import split_host_and_accelerator
    from hwgen.transforms.pipeline import STREAMLINE, TO_HARDWARE, apply_all, dram_budget

    path = export("binarydensenet-37", tmp_path / "bdn37.onnx", "imagenet", seed=0)
    model = prepare(load_onnx(path)).transform(GiveUniqueNodeNames())
    hardware = apply_all(split_host_and_accelerator(apply_all(model, STREAMLINE)).accel, TO_HARDWARE)
    cfg = BuildConfig(board="ultra96-v2", clock_mhz=lookup_board("ultra96-v2").fclk_mhz, target_fps="max")
    part, dram = lookup_part(cfg.fit_part), dram_budget(cfg)
    folding = SetFolding(None, part, dram=dram)
    chosen = folding.choose(hardware)
    assert max(o.cycles for o in chosen.values()) == 3_161_284
    assert fits_as_found(folding, hardware)


@pytest.mark.slow
def test_the_fastest_fitting_folding_is_found_where_fitting_is_not_monotonic(tmp_path):
    """Bi-Real-18 (ImageNet size) on the PYNQ-Z2: foldings of 1.2 M cycles fit, some of 1.4 M
    and 2.8 M do not (one price of block RAM moves memories of a like shape together), so the
    bisection from the slowest lands on a slow one; counts 20 % apart below it find the folding
    of 1,204,224 cycles (83 FPS), within the part (a minute and a half, 1.3 GB)."""
    from qonnx.transformation.general import GiveUniqueNodeNames

    from hwgen.frontend import load_onnx, prepare
    from hwgen.parts import lookup_part
    from hwgen.transforms.hardware.set_folding import SetFolding
    from hwgen.transforms.partition import split_host_and_accelerator
    from hwgen.transforms.pipeline import STREAMLINE, TO_HARDWARE, apply_all, dram_budget

    path = export("bireal-18", tmp_path / "bireal18.onnx", "imagenet", seed=0)
    model = prepare(load_onnx(path)).transform(GiveUniqueNodeNames())
    hardware = apply_all(split_host_and_accelerator(apply_all(model, STREAMLINE)).accel, TO_HARDWARE)
    cfg = BuildConfig(board="pynq-z2", clock_mhz=100.0, target_fps="max")
    part, dram = lookup_part(cfg.fit_part), dram_budget(cfg)
    between = SetFolding(None, part, dram=dram)
    needs = between._needs(between._fold(between._options(hardware), 2_809_856)[0])
    assert needs["BRAM18"] > between._limits()["BRAM18"]
    folding = SetFolding(None, part, dram=dram)
    chosen = folding.choose(hardware)
    assert max(o.cycles for o in chosen.values()) == 1_204_224
    assert fits_as_found(folding, hardware)


@pytest.mark.slow
def test_a_dearer_block_ram_is_taken_where_a_cheaper_ones_spill_leaves_the_luts_over(tmp_path):
    """BinaryDenseNet-28 (ImageNet size) on the ZCU104: at 226,576 cycles, the cheapest price of
    block RAM that fits spills a layer to DRAM whose buffers take 8,600 LUTs more than it took on
    chip, over the compute units' budget (within the part); a dearer price fits. Taking the first
    price that fitted the part's LUTs, folding called that count a miss and bisected to 250,880
    cycles (797 FPS); looking on to a price within the budget, that count fits and the search
    finds 225,792 (886 FPS), within the part (a minute and a half)."""
    from qonnx.transformation.general import GiveUniqueNodeNames

    from hwgen.frontend import load_onnx, prepare
    from hwgen.parts import lookup_part
    from hwgen.transforms.hardware.set_folding import SetFolding
    from hwgen.transforms.partition import split_host_and_accelerator
    from hwgen.transforms.pipeline import STREAMLINE, TO_HARDWARE, apply_all, dram_budget

    path = export("binarydensenet-28", tmp_path / "bdn28.onnx", "imagenet", seed=0)
    model = prepare(load_onnx(path)).transform(GiveUniqueNodeNames())
    hardware = apply_all(split_host_and_accelerator(apply_all(model, STREAMLINE)).accel, TO_HARDWARE)
    cfg = BuildConfig(board="zcu104", clock_mhz=200.0, target_fps="max")
    folding = SetFolding(None, lookup_part(cfg.fit_part), dram=dram_budget(cfg))
    options = folding._options(hardware)
    needs = folding._needs(folding._fold(options, 226_576)[0])
    assert all(need <= folding._limits()[name] for name, need in needs.items())
    chosen = folding.choose(hardware)
    assert max(o.cycles for o in chosen.values()) == 225_792
    assert fits_as_found(folding, hardware)


@pytest.mark.slow
def test_reactnet_a_builds_for_the_zcu104_at_the_fastest_rate_that_fits(tmp_path, verilator_cache):
    """ReActNet-A (ImageNet size): `--board zcu104 --target-fps max` puts seven layers' weights in
    DRAM, folds again to leave its FIFOs their block RAM and plumbing the LUTs it takes beyond its
    share, and fits the part (9 minutes, 2.5 GB). Folded for the compute units alone it reads
    997 FPS; plumbed as first folded it took 246,451 LUTs of the part's 230,400."""
    path = export("reactnet-a", tmp_path / "reactnet-a.onnx", "imagenet", seed=0)
    report = build(path, tmp_path / "b", BuildConfig(board="zcu104", clock_mhz=200.0, target_fps="max",
                                                     cache_dir=verilator_cache))
    zcu104 = next(row for row in report["parts"] if row["part"] == "xczu7ev")
    assert zcu104["fits"] and zcu104["est_bram18"] <= 624 and zcu104["est_uram"] <= 96
    in_dram = [layer["name"] for layer in report["layers"] if layer["op"] == "DramMVU"]
    assert in_dram == ["ConvMVU_17", "ConvMVU_19", "ConvMVU_27", "ConvMVU_28", "ConvMVU_29", "ConvMVU_31", "MVU_0"]
    # 498 FPS at 200 MHz (443 while a layer in DRAM had to fill whole bus words); its FIFOs hold
    # three passes beside each weight-stationary unit
    assert report["totals"]["max_est_cycles"] == 401_408
    assert report["dram"]["mbytes_per_s"] <= report["dram"]["available_mbytes_per_s"]


@pytest.mark.slow
def test_reactnet_a_builds_for_the_pynq_z2(tmp_path, verilator_cache):
    """ReActNet-A (ImageNet size) for the PYNQ-Z2 (`--board pynq-z2 --target-fps max`): no
    folding leaves its FIFOs their block RAM beside the LUTs that plumbing takes, so the FIFOs at
    joins go to rings in DRAM, and the design fits the xc7z020 at 38,535,168 cycles a frame (2.6
    FPS at 100 MHz; 11 minutes). It stopped with that error before it tried the rings."""
    path = export("reactnet-a", tmp_path / "reactnet-a.onnx", "imagenet", seed=0)
    report = build(path, tmp_path / "b", BuildConfig(board="pynq-z2", clock_mhz=100.0, target_fps="max",
                                                     cache_dir=verilator_cache))
    z2 = next(row for row in report["parts"] if row["part"] == "xc7z020")
    assert z2["fits"] and z2["est_bram18"] <= 280 and z2["est_luts"] <= 53_200
    assert report["totals"]["max_est_cycles"] == 38_535_168
    assert any(layer["op"] == "DramFifo" for layer in report["layers"])
    assert report["dram"]["mbytes_per_s"] <= report["dram"]["available_mbytes_per_s"]


def test_layers_in_several_passes_are_the_model(tmp_path, verilator_cache):
    """A ReActNet normal block (16 channels, 8x8) with its weights in DRAM, each weight-stationary
    unit set to take its 64 vectors in 4 passes (the fold checkpoint edited, the build run again
    from plumbing): the DRAM image holds each unit's weights once, read once a pass; rtlsim equals
    Brevitas with and without stalls, at its slowest unit's estimate."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from hwgen.models.blocks import BlockNet, ReActNetBlock
    from hwgen.models.zoo import randomize

    net = BlockNet(ReActNetBlock(16, 16, 1), 16, 8)
    randomize(net, seed=0)
    path = tmp_path / "block.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    out = tmp_path / "build"
    cfg = BuildConfig(target_cycles=4096, weight_memory="dram", fifo_sizing="modelled", cache_dir=verilator_cache)
    build(path, out, cfg)
    [fold] = (out / "graphs").glob("*_fold.onnx")
    graph = ModelWrapper(str(fold))
    units = [n for n in graph.graph.node if n.op_type == "DramMVU"]
    assert len(units) == 2
    for node in units:
        getCustomOp(node).set_nodeattr("passes", 4)
    graph.save(str(fold))
    report = build(path, out, cfg, from_step="plumbing")
    weights = 16 * 16 * 10 // 8  # the 3x3 and the 1x1 convolution's binary weights, in bytes
    assert report["dram"]["bytes_per_frame"] == 4 * weights
    assert (out / "rtl" / "dram.bin").stat().st_size == 4096 + 16 * 16 // 8  # the second image at 4 KB
    x = np.random.default_rng(5).random((3, *net.input_shape[1:])).astype(np.float32)
    assert_rtlsim_is_brevitas(net, out, report, x, verilator_cache)

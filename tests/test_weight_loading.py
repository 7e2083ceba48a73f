"""Weights loaded after reset from the weight stream (`--weight-memory`), in UltraRAM on UltraScale+.

The accelerator with loaded weights computes what the one with weights in ROM computes, frame for
frame and cycle for cycle; the weights really come from `rtl/weights.bin` (a flipped bit there is
a hardware mismatch); on a part with UltraRAM the deep weight memories go there and Yosys maps
them to URAM288 as the estimate counts.
"""

import json
import shutil

import numpy as np
import pytest
import torch

from hwgen.builder import build
from hwgen.cli import main
from hwgen.config import BuildConfig
from hwgen.errors import HwgenError
from hwgen.frontend.load import export_brevitas
from hwgen.simulate import simulate_build, verify_build
from hwgen.units.datapath import uram_count


class BinaryMlp(torch.nn.Module):
    """sign(x) -> binary FC (inputs -> hidden) -> BatchNorm -> sign -> binary FC (hidden -> 10)."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        from brevitas.nn import QuantIdentity, QuantLinear
        from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant

        self.inq = QuantIdentity(act_quant=CommonActQuant, bit_width=1)
        self.fc1 = QuantLinear(inputs, hidden, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)
        self.bn = torch.nn.BatchNorm1d(hidden)
        self.act = QuantIdentity(act_quant=CommonActQuant, bit_width=1)
        self.fc2 = QuantLinear(hidden, 10, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.bn(self.fc1(self.inq(x.reshape(x.shape[0], -1))))))


def _model(tmp_path, inputs: int, hidden: int):
    torch.manual_seed(0)
    model = BinaryMlp(inputs, hidden).eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-4, 4)
    path = tmp_path / "m.onnx"
    export_brevitas(model, (1, inputs)).save(str(path))
    return path


@pytest.fixture(scope="module")
def builds(tmp_path_factory, verilator_cache):
    tmp = tmp_path_factory.mktemp("loading")
    path = _model(tmp, 64, 64)
    out = {}
    for mode in ("rom", "loaded"):
        out[mode] = tmp / mode
        build(path, out[mode], BuildConfig(target_cycles=16, weight_memory=mode, cache_dir=verilator_cache))
    return out


def test_loaded_weights_compute_what_the_rom_does_in_the_same_cycles(builds, verilator_cache):
    x = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)
    rom, loaded = builds["rom"], builds["loaded"]
    report = json.loads((loaded / "report.json").read_text())
    mvus = [layer for layer in report["layers"] if layer["op"] == "MVU"]
    assert len(mvus) == 2 and all(layer["weights_loaded"] for layer in mvus)
    assert not any(layer["weights_loaded"] for layer in json.loads((rom / "report.json").read_text())["layers"])
    beats = json.loads((loaded / "accelerator.json").read_text())["weight_beats"]
    assert beats > 0 and (loaded / "rtl" / "weights.bin").stat().st_size == 8 * beats
    assert not (rom / "rtl" / "weights.bin").exists()
    for stall in (0.0, 0.3):
        result = verify_build(loaded, x, stall_prob=stall, cache_dir=verilator_cache)
        assert result.exact, result.summary()
    _, rom_stats = simulate_build(rom, x, cache_dir=verilator_cache)
    _, loaded_stats = simulate_build(loaded, x, cache_dir=verilator_cache)
    assert loaded_stats["cycles_per_frame"] == rom_stats["cycles_per_frame"] == 16.0


def test_the_weights_come_from_the_weight_stream(builds, tmp_path, verilator_cache, capsys):
    x = np.random.default_rng(1).standard_normal((16, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    flipped = tmp_path / "flipped"
    shutil.copytree(builds["loaded"], flipped)
    weights = flipped / "rtl" / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[0] ^= 0xFF  # eight weights of the first layer's first word
    weights.write_bytes(bytes(data))
    cache = ["--cache-dir", str(verilator_cache)]
    assert main(["verify", str(flipped), "--input", str(tmp_path / "x.npy"), *cache]) == 1
    assert capsys.readouterr().out.startswith("MISMATCH: the accelerator's integer output differs")
    weights.write_bytes(bytes(data[:-8]))
    with pytest.raises(HwgenError, match="weights.bin.*holds .* bytes, the design takes"):
        simulate_build(flipped, x, cache_dir=verilator_cache)


@pytest.fixture(scope="module")
def deep(tmp_path_factory, verilator_cache):
    """A 4096-input layer folded slowly (a deep, narrow weight memory), built for the KV260's
    xck26 (`--weight-memory auto`) and for the xc7z020."""
    tmp = tmp_path_factory.mktemp("deep")
    path = _model(tmp, 4096, 64)
    for part in ("xck26", "xc7z020"):
        build(path, tmp / part, BuildConfig(target_cycles=16384, part=part, cache_dir=verilator_cache))
    report = json.loads((tmp / "xck26" / "report.json").read_text())
    first = next(layer for layer in report["layers"] if layer["op"] == "MVU")
    lanes = first["PE"] * first["SIMD"]
    return tmp, report, first, uram_count(4096 * 64 // lanes, lanes)


def test_deep_weights_go_to_uram_on_ultrascale(deep, verilator_cache):
    """On the xck26 the deep weight memory (at 128 weights per cycle 2K x 128: 15 BRAM18 or 2
    URAM288) is loaded into UltraRAM; on the xc7z020 it stays a ROM; both exact in rtlsim."""
    tmp, report, first, urams = deep
    assert first["weights_loaded"] and first["est_urams"] == urams == report["totals"]["est_urams"] > 0
    row = next(r for r in report["parts"] if r["part"] == "xck26")
    assert row["est_uram"] == urams and row["est_bram18"] == report["totals"]["est_brams"]
    assert not any(layer["weights_loaded"] for layer in json.loads((tmp / "xc7z020" / "report.json").read_text())["layers"])
    x = np.random.default_rng(2).standard_normal((4, 4096)).astype(np.float32)
    assert verify_build(tmp / "xck26", x, cache_dir=verilator_cache).exact


@pytest.mark.slow
def test_yosys_maps_the_loaded_weights_to_uram(deep):
    """Yosys (`synth_xilinx -family xcup`) maps that memory to as many URAM288 as estimated, and
    the unit's other memories to the block RAM estimated."""
    from hwgen.synth import synthesize

    tmp, _, first, urams = deep
    synth = synthesize(tmp / "xck26", part="xck26")
    layer = next(layer for layer in synth["layers"] if layer["name"] == first["name"])
    assert layer["synth"]["uram"] == urams == synth["synth"]["uram"]
    assert layer["synth"]["bram18"] + 2 * layer["synth"]["bram36"] == first["est_brams"]


def test_bad_weight_memory_mode_is_one_line(tmp_path, capsys):
    path = _model(tmp_path, 64, 64)
    with pytest.raises(SystemExit) as exit_:
        main(["build", str(path), "-o", str(tmp_path / "o"), "--weight-memory", "flash"])
    assert exit_.value.code == 2
    assert "invalid choice: 'flash'" in capsys.readouterr().err
    with pytest.raises(HwgenError, match="weight_memory: must be one of auto, rom, loaded"):
        BuildConfig(weight_memory="flash")


def test_deploy_with_loaded_weights_sends_them_first(tmp_path, verilator_cache):
    """For the KV260 with `--weight-memory loaded`: the deploy folder carries `weights.bin` and
    the second DMA's name; the driver sends the weights when it opens the accelerator, then gives
    the model's outputs on the simulated fabric; without them the data DMA never finishes (a
    timeout naming it, not a hang); the Vivado flow has the weights DMA on `s_axis_weights`, and
    the shell synthesizes with the accelerator (Yosys, the KV260's part)."""
    from hwgen.deploy.boards import lookup_board
    from hwgen.deploy.checks import run_tcl_skeleton, shell_ports, synthesize_shell
    from hwgen.deploy.sim_pynq import Overlay, simulated_accelerator
    from hwgen.driver.accelerator import Accelerator, DriverError
    from hwgen.simulate import run_input_model

    path = _model(tmp_path, 64, 64)
    out = tmp_path / "kv260"
    build(path, out, BuildConfig(target_cycles=16, weight_memory="loaded", board="kv260", cache_dir=verilator_cache))
    deploy = out / "deploy"
    info = json.loads((deploy / "accelerator.json").read_text())
    beats = json.loads((out / "accelerator.json").read_text())["weight_beats"]
    assert info["weights"] == {"file": "weights.bin", "beats": beats, "dma": "axi_dma_weights"}
    assert (deploy / "weights.bin").read_bytes() == (out / "rtl" / "weights.bin").read_bytes()

    x = np.random.default_rng(3).standard_normal((24, 64)).astype(np.float32)
    acc = simulated_accelerator(deploy, batch_size=8, cache_dir=verilator_cache)
    assert np.array_equal(acc.execute(x), run_input_model(out, x))
    # the batch's cycles, without the loading the board does once
    _, stats = simulate_build(out, x[:8], cache_dir=verilator_cache)
    runtime = acc.throughput_test()["runtime[ms]"]
    assert runtime < stats["total_cycles"] / 200e6 * 1e3

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Accelerator, "load_weights", lambda self: None)
        idle = simulated_accelerator(deploy, timeout_s=0.05, cache_dir=verilator_cache)
        with pytest.raises(DriverError, match="axi_dma_0: the DMA's send \\(MM2S\\) channel did not finish"):
            idle.execute(x[:1])
    assert not Overlay(deploy, cache_dir=verilator_cache).ready_to_run

    calls = run_tcl_skeleton(out / "vivado" / "build.tcl")
    weights_dma = next(c for c in calls if c[0] == "set_property" and "c_include_s2mm 0" in c[2])
    assert "CONFIG.c_m_axis_mm2s_tdata_width 64" in weights_dma[2]
    assert any(c[0] == "create_bd_cell" and c[-1] == "axi_dma_weights" for c in calls)
    i = calls.index(["get_bd_intf_pins", "axi_dma_weights/M_AXIS_MM2S"])  # arguments run before their command
    assert calls[i + 1] == ["get_bd_intf_pins", "accelerator/s_axis_weights"] and calls[i + 2][0] == "connect_bd_intf_net"
    ports = shell_ports((out / "vivado" / "src" / "hwgen_dma_shell.v").read_text())
    assert ports["s_axis_weights_tdata"] == ("input", 64) and ports["s_axis_weights_tready"][0] == "output"
    shell = synthesize_shell(out, lookup_board("kv260"))
    assert shell["fits"] and shell["luts"] > 0

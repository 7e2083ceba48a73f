"""Boards as data, the deploy folder, and the board driver run against the simulated fabric.

The driver's whole code path (host programs in numpy, packing, DMA buffers and channels, unpacking)
runs through `simulated_accelerator`, which hands it a PYNQ-shaped overlay backed by Verilator: the outputs come from
the simulated RTL. What cannot run here: a real board, `pynq`, and a bitstream (no Vivado).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwgen.builder import build
from hwgen.cli import main
from hwgen.config import BuildConfig
from hwgen.deploy.boards import BOARDS, lookup_board, parse_board
from hwgen.deploy.sim_pynq import simulated_accelerator
from hwgen.driver import Accelerator, DriverError
from hwgen.errors import HwgenError
from hwgen.frontend import export_brevitas
from hwgen.models.bnn_pynq import load_checkpoint
from hwgen.models.data import mnist_test
from hwgen.simulate import run_input_model, simulate_build

_which = shutil.which


def _captured_stderr():
    return contextlib.redirect_stderr(io.StringIO())


BOARD_PARTS = {"pynq-z1": "xc7z020clg400-1", "pynq-z2": "xc7z020clg400-1", "ultra96-v2": "xczu3eg-sbva484-1-e",
               "zcu104": "xczu7ev-ffvc1156-2-e", "kv260": "xck26-sfvc784-2LV-c"}


def test_the_five_boards(capsys):
    assert {name: b.part for name, b in BOARDS.items()} == BOARD_PARTS
    assert {b.ps for b in BOARDS.values()} == {"ps7", "ps8"} and lookup_board("pynq-z2").ps == "ps7"
    assert lookup_board("kv260").fclk_mhz == 200.0 and lookup_board("kv260").device.uram == 64
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert all(name in out and part in out for name, part in BOARD_PARTS.items())


def _board(ps: str = "ps7", part: str = "xc7z020", dram: str = 'mt_per_s = 1066\nbus_bits = 16\nports = ["HP1"]\n'
           'source = "manual"') -> str:
    return (f'name = "b"\ndescription = "d"\npart = "{part}"\nps = "{ps}"\nboard_part = ""\nfclk_mhz = 100\n'
            f'[hp_port]\nname = "HP0"\ndata_width = 64\n[dma]\nmax_burst_len = 16\nbuffer_length_width = 23\n'
            f'[dram]\n{dram}')


def test_dram_bandwidth_of_each_board_with_its_source():
    """What a design may plan on: 70 % of the DRAM's peak, or what the reader ports carry at the
    fabric clock where that is less."""
    bandwidth = {name: round(b.dram_mbytes_per_s) for name, b in BOARDS.items()}
    assert bandwidth == {"pynq-z1": 1470, "pynq-z2": 1492, "ultra96-v2": 5972, "zcu104": 9600, "kv260": 9600}
    z2 = lookup_board("pynq-z2")
    assert z2.dram_peak_mbytes_per_s == 1066 * 2 and "16-bit" in z2.dram_source
    assert lookup_board("zcu104").dram_port_mbytes_per_s == 3 * 16 * 200  # three 128-bit ports
    assert all(b.hp_port not in b.dram_ports for b in BOARDS.values())


@pytest.mark.parametrize("text, problem", [
    ("name = 3", "'name' must be a str"),
    (_board(ps="ps9"), "'ps' must be one of"),
    (_board(part="xc9"), "unknown part"),
    ("name = [", "not valid TOML"),
    (_board(dram='mt_per_s = 1066\nbus_bits = 16\nsource = "m"'), "'dram.ports' must be a list"),
    (_board(dram='mt_per_s = 1066\nbus_bits = 12\nports = ["HP1"]\nsource = "m"'), "'dram.bus_bits' 16, 32 or 64"),
    (_board(dram='mt_per_s = 1066\nbus_bits = 16\nports = ["HP0"]\nsource = "m"'), "must not name HP0"),
    (_board(dram='mt_per_s = 1066\nbus_bits = 16\nports = ["HP1"]'), "'dram.source' must be a str"),
])
def test_bad_board_files_are_named(text, problem):
    with pytest.raises(HwgenError, match=problem) as info:
        parse_board(text, "boards/mine.toml")
    assert "boards/mine.toml" in str(info.value) or "part" in str(info.value)


def test_unknown_board_is_one_line(tiny_mlp_onnx, tmp_path, capsys):
    assert main(["build", str(tiny_mlp_onnx), "-o", str(tmp_path / "b"), "--board", "pynq-z9"]) == 2
    assert "unknown board 'pynq-z9'; known boards: kv260, pynq-z1" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def build_for_board(onnx: Path, out: Path, board: str, cache: Path, *target: str) -> list[str]:
    """`hwgen build --board B --bitstream` where Vivado is not on PATH: exit status 2 and one line
    (returned), with the build, `OUT/deploy/` and `OUT/vivado/` complete."""
    with pytest.MonkeyPatch.context() as mp, _captured_stderr() as err:
        mp.setattr("shutil.which", lambda name, *a, **k: None if name == "vivado" else _which(name, *a, **k))
        code = main(["build", str(onnx), "-o", str(out), "--board", board, "--bitstream", *target,
                     "--cache-dir", str(cache)])
    lines = err.getvalue().splitlines()
    assert code == 2 and len(lines) == 1 and "vivado is not on PATH: run" in lines[0], lines
    for path in ("report.json", "deploy/accelerator.json", "deploy/hwgen/driver/accelerator.py",
                 "vivado/build.tcl", "vivado/build.sh", "vivado/src/hwgen_dma_shell.v"):
        assert (out / path).is_file(), path
    return lines


@pytest.fixture(scope="module")
def tfc_deploy(shared_data, tmp_path_factory, verilator_cache):
    """TFC-W1A1 of BNN-PYNQ built for the PYNQ-Z2 with --bitstream, without Vivado."""
    tmp = tmp_path_factory.mktemp("tfc")
    model = load_checkpoint("TFC_1W1A", shared_data / "brevitas_bnn_pynq" / "tfc_1w1a.tar")
    export_brevitas(model, (1, 1, 28, 28)).save(str(tmp / "tfc.onnx"))
    out = tmp / "build"
    build_for_board(tmp / "tfc.onnx", out, "pynq-z2", verilator_cache, "--target-cycles", "1024")
    return out


def test_deploy_folder_contents(tfc_deploy):
    report = json.loads((tfc_deploy / "report.json").read_text())
    # weights on chip: no DRAM read, against the PYNQ-Z2's DDR3 (not the part's least board)
    assert report["dram"] == {"bytes_per_frame": 0, "mbytes_per_s": 0.0, "available_mbytes_per_s": 1492.4,
                              "fifos": [], "fifo_bytes_per_frame": 0}
    assert [row["dram_mbytes_per_s"] for row in report["parts"]] == [1470.0, 5972.4, 9600.0, 9600.0]
    deploy = tfc_deploy / "deploy"
    info = json.loads((deploy / "accelerator.json").read_text())
    assert (info["board"], info["part"], info["fclk_mhz"], info["dma"]) == ("pynq-z2", "xc7z020clg400-1", 100.0, "axi_dma_0")
    assert info["model_input_shape"] == [1, 1, 28, 28] and info["model_output_shape"] == [1, 10]
    for stream in (info["input"], info["output"]):
        b = stream["dma_bytes_per_beat"]
        assert b >= stream["bytes_per_beat"] and b & (b - 1) == 0  # tdata padded to 8 x 2^k bits
    assert [op["op"] for op in info["host_pre"]["ops"]] and info["host_post"]["ops"]
    assert sorted(p.name for p in (deploy / "hwgen" / "driver").glob("*.py")) == \
        ["__init__.py", "__main__.py", "accelerator.py", "host_ops.py", "wire.py"]
    assert json.loads((tfc_deploy / "report.json").read_text())["clock_mhz"] == 100.0  # the board's clock


def test_driver_on_simulated_fabric_is_the_model(tfc_deploy, shared_data, verilator_cache):
    x, _ = mnist_test(shared_data)
    x = x[:200]
    acc = simulated_accelerator(tfc_deploy / "deploy", batch_size=50, cache_dir=verilator_cache)
    y = acc.execute(x)
    assert np.array_equal(y, run_input_model(tfc_deploy, x))  # exactly the model's outputs
    result = acc.throughput_test()
    assert set(result) == {"runtime[ms]", "throughput[images/s]", "DRAM_in_bandwidth[MB/s]",
                           "DRAM_out_bandwidth[MB/s]", "fclk[mhz]", "batch_size"}
    _, stats = simulate_build(tfc_deploy, x[:50], cache_dir=verilator_cache)
    # the simulated cycles of a batch of 50 at the board's 100 MHz
    assert result["runtime[ms]"] == pytest.approx(stats["total_cycles"] / 100e6 * 1e3, rel=1e-9)
    assert result["throughput[images/s]"] == pytest.approx(50 / (stats["total_cycles"] / 100e6), rel=1e-9)
    assert result["throughput[images/s]"] <= 100e6 / stats["cycles_per_frame"]


def test_driver_refuses_bad_input(tfc_deploy, verilator_cache):
    acc = simulated_accelerator(tfc_deploy / "deploy", cache_dir=verilator_cache)
    x = np.zeros((2, 1, 28, 28), np.float32)
    with pytest.raises(DriverError, match=r"has shape \[2, 784\], the model takes \[N, 1, 28, 28\]"):
        acc.execute(x.reshape(2, 784))
    with pytest.raises(DriverError, match="has dtype <U1"):
        acc.execute(np.full((1, 1, 28, 28), "a"))
    x[1, 0, 3, 4] = np.nan
    with pytest.raises(DriverError, match=r"holds nan at index \[1, 0, 3, 4\]"):
        acc.execute(x)
    with pytest.raises(DriverError, match="must be a numpy array, not list"):
        acc.execute([[0.0]])


def test_deploy_folder_of_another_build_is_refused(tfc_deploy, tiny_mlp_onnx, tmp_path, verilator_cache):
    other = tmp_path / "other"
    build(tiny_mlp_onnx, other, BuildConfig(board="pynq-z1", cache_dir=verilator_cache))
    with pytest.raises(DriverError, match="the deploy folder is not of the build in"):
        simulated_accelerator(tfc_deploy / "deploy", build_dir=other, cache_dir=verilator_cache)


def test_no_bitfile_on_a_board(tfc_deploy):
    with pytest.raises(DriverError, match="accelerator.bit: no bitfile"):
        Accelerator(tfc_deploy / "deploy")
    with pytest.raises(DriverError, match="not a hwgen deploy description"):
        simulated_accelerator(tfc_deploy)  # the build folder itself


def test_copied_driver_needs_numpy_only(tfc_deploy, tmp_path):
    """The deploy folder's driver, run as on a board (from the folder, hwgen not installed there):
    it imports without qonnx, onnx or torch, and without a bitfile says so in one line, exit 2."""
    deploy = tfc_deploy / "deploy"
    probe = ("import sys, hwgen.driver, hwgen.driver.__main__; "
             "print(sorted(m for m in ('qonnx', 'onnx', 'onnxruntime', 'torch', 'brevitas') if m in sys.modules)); "
             "print(hwgen.driver.__file__)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=deploy, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "[]" and Path(out.splitlines()[1]).resolve().is_relative_to(deploy.resolve())
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 28, 28), np.float32))
    run = subprocess.run([sys.executable, "-m", "hwgen.driver", ".", "--input", str(tmp_path / "x.npy"),
                          "--output", str(tmp_path / "y.npy")], cwd=deploy, capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "no bitfile" in run.stderr


@pytest.mark.slow
def test_cnv_on_pynq_z1_through_the_driver(shared_data, tmp_path, verilator_cache):
    """CNV-W1A1 (random weights, fixed BN statistics) for the PYNQ-Z1 at BNN-PYNQ's rate: the
    driver on the simulated fabric gives exactly the model's outputs on CIFAR-10 images."""
    from hwgen.models.cnv import cnv_w1a1, with_fixed_batchnorm_statistics

    export_brevitas(with_fixed_batchnorm_statistics(cnv_w1a1(), seed=0), (1, 3, 32, 32)).save(str(tmp_path / "cnv.onnx"))
    out = tmp_path / "build"
    build_for_board(tmp_path / "cnv.onnx", out, "pynq-z1", verilator_cache, "--target-fps", "3050")
    data = np.load(shared_data / "cifar10" / "cifar10_test_first1017.npz")
    x = (data["images"][:24] / 255.0).astype(np.float32)
    acc = simulated_accelerator(out / "deploy", batch_size=8, cache_dir=verilator_cache)
    assert np.array_equal(acc.execute(x), run_input_model(out, x))
    result = acc.throughput_test()
    assert result["fclk[mhz]"] == 100.0 and 0 < result["throughput[images/s]"] <= 100e6 / 32_768 * 1.0001


def test_a_dma_that_never_finishes_is_an_error_not_a_hang(tfc_deploy, verilator_cache):
    acc = simulated_accelerator(tfc_deploy / "deploy", timeout_s=0.2, cache_dir=verilator_cache)
    acc._dma.recvchannel.transfer = lambda buffer: None  # the S2MM channel never starts: the stream stalls
    with pytest.raises(DriverError, match=r"axi_dma_0: the DMA's send \(MM2S\) channel did not finish within 0.2 s"):
        acc.execute(np.zeros((1, 1, 28, 28), np.float32))


def test_deploy_description_runs_no_code(tfc_deploy, tmp_path, verilator_cache):
    """The host programs are data: an op the fixed numpy table does not hold is refused by name,
    whatever the description says (nothing is imported or evaluated from it)."""
    copy = tmp_path / "build"
    shutil.copytree(tfc_deploy, copy)
    path = copy / "deploy" / "accelerator.json"
    info = json.loads(path.read_text())
    info["host_pre"]["ops"][0]["op"] = "__import__('os').system('touch pwned')"
    path.write_text(json.dumps(info))
    acc = simulated_accelerator(copy / "deploy", cache_dir=verilator_cache)
    with pytest.raises(HwgenError, match="is not one the host program runs"):
        acc.execute(np.zeros((1, 1, 28, 28), np.float32))
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


@pytest.mark.parametrize("per_class", [False, True])
def test_driver_returns_topk_indices_as_the_model(per_class, tmp_path, verilator_cache):
    """A model ending in TopK: in hardware (LabelSelect) or on the host (a per-class BatchNorm
    before it); either way the driver returns the model's int64 indices."""
    import torch

    from hwgen.models.mlp import BnnMlp, randomize

    net = randomize(BnnMlp(in_features=64, hidden=(32,)), seed=12 if per_class else 11)
    if not per_class:
        with torch.no_grad():
            bn = net.layers[-1]
            bn.running_mean.fill_(3.0), bn.running_var.fill_(4.0), bn.weight.fill_(0.5), bn.bias.fill_(0.25)

    class Top(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.topk(self.net(x), 2).indices

    export_brevitas(Top(), (1, 1, 8, 8)).save(str(tmp_path / "m.onnx"))
    report = build(tmp_path / "m.onnx", tmp_path / "b", BuildConfig(board="pynq-z1", cache_dir=verilator_cache))
    assert ("LabelSelect" in [layer["op"] for layer in report["layers"]]) != per_class
    x = np.random.default_rng(4).random((20, 1, 8, 8)).astype(np.float32)
    y = simulated_accelerator(tmp_path / "b" / "deploy", batch_size=5, cache_dir=verilator_cache).execute(x)
    expected = run_input_model(tmp_path / "b", x)
    assert y.dtype == expected.dtype == np.int64 and np.array_equal(y, expected)


def test_driver_checks_a_declared_input_datatype(shared_data, tmp_path, verilator_cache):
    """A FINN-ONNX TFC that declares a BIPOLAR input (784 values): the driver refuses a 0 as
    `sim` does."""
    import onnx

    from hwgen.models.ecosystem import finn_onnx_tfc

    model = load_checkpoint("TFC_1W1A", shared_data / "brevitas_bnn_pynq" / "tfc_1w1a.tar")
    onnx.save(finn_onnx_tfc(model, bipolar_input=True), str(tmp_path / "finn.onnx"))
    build(tmp_path / "finn.onnx", tmp_path / "b", BuildConfig(target_cycles=1024, board="pynq-z2",
                                                              cache_dir=verilator_cache))
    acc = simulated_accelerator(tmp_path / "b" / "deploy", cache_dir=verilator_cache)
    x = np.where(np.random.default_rng(0).random((2, 784)) < 0.5, -1.0, 1.0).astype(np.float32)
    assert np.array_equal(acc.execute(x), run_input_model(tmp_path / "b", x))
    x[1, 17] = 0.0
    with pytest.raises(DriverError, match=r"value 0.0 at index \[1, 17\] is outside the datatype BIPOLAR"):
        acc.execute(x)


def test_a_batch_beyond_one_dma_transfer_is_refused(tfc_deploy, verilator_cache):
    acc = simulated_accelerator(tfc_deploy / "deploy", batch_size=1 << 16, cache_dir=verilator_cache)
    with pytest.raises(DriverError, match=r"batch_size: a batch of 65536 frames moves \d+ bytes, more than one DMA "
                                          r"transfer takes \(8388607\)"):
        acc.throughput_test()

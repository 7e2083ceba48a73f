"""The Python API (`hwgen.build` -> `Build`) and the command line's `--json` / `--quiet` / progress:
a Brevitas module built directly, simulated bit-exact against the module itself, the same folder
opened again; one JSON object on stdout and nothing else."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
import torch

import hwgen
from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.models.mlp import BnnMlp, randomize


@pytest.fixture(scope="module")
def mlp() -> torch.nn.Module:
    return randomize(BnnMlp(hidden=(32, 16)), seed=3).eval()


@pytest.fixture(scope="module")
def built(mlp, tmp_path_factory, verilator_cache) -> hwgen.Build:
    out = tmp_path_factory.mktemp("api") / "mlp"
    return hwgen.build(mlp, out, input_shape=(1, 1, 28, 28), target_fps=100_000, cache_dir=verilator_cache)


def test_a_brevitas_module_builds_and_simulates_as_itself(mlp, built):
    x = np.random.default_rng(0).integers(0, 256, size=(8, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        expected = mlp(torch.from_numpy(x)).numpy()
    y = built.sim(x)
    # the float tail (the last layer's scale) in float32 units of the frame; `verify` checks bits
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_array_equal(y.argmax(1), expected.argmax(1))
    assert built.sim_stats["frames"] == 8
    # the folding asked for: 1,000 cycles per frame at 100 MHz
    assert built.report["target"]["cycles"] == 1000 and built.report["target"]["met"]
    assert built.report["totals"]["max_est_cycles"] <= 1000
    assert "units" in repr(built)


def test_an_existing_build_opens_and_verifies(built, verilator_cache):
    again = hwgen.Build.open(built.out, cache_dir=verilator_cache)
    assert again.report == built.report
    x = np.random.default_rng(1).integers(0, 256, size=(4, 1, 28, 28)).astype(np.float32)
    result = again.verify(x)
    assert result.passed and result.exact and result.frames == 4


def test_the_report_page_shows_inline(built):
    view = built.show()
    page = view._repr_html_()
    assert page.startswith("<iframe srcdoc=") and "&lt;html" in page.lower()
    assert view.path == built.out / "report.html"


def test_unknown_option_and_missing_shape_are_named(mlp, tmp_path):
    with pytest.raises(HwgenError, match="unknown build option 'target_fsp'"):
        hwgen.build(mlp, tmp_path / "a", target_fsp=100)
    with pytest.raises(HwgenError, match="input_shape"):
        hwgen.build(torch.nn.Linear(4, 2), tmp_path / "b")
    with pytest.raises(HwgenError, match="not a finished hwgen build"):
        hwgen.Build.open(tmp_path)


def test_cli_json_prints_one_object_and_nothing_else(tiny_mlp_onnx, tmp_path, capsys, verilator_cache):
    code = main(["build", str(tiny_mlp_onnx), "-o", str(tmp_path / "j"), "--json", "--quiet",
                 "--cache-dir", str(verilator_cache)])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    data = json.loads(out)  # the whole of stdout is the one object
    assert data["build"] == str(tmp_path / "j")
    assert data["layers"] == json.loads((tmp_path / "j" / "report.json").read_text())["layers"]


def test_cli_shows_each_step_and_a_summary(tiny_mlp_onnx, tmp_path, capsys, monkeypatch, verilator_cache):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress is drawn on a terminal only
    code = main(["build", str(tiny_mlp_onnx), "-o", str(tmp_path / "p"), "--cache-dir", str(verilator_cache)])
    out, err = capsys.readouterr()
    assert code == 0
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err).replace("\r", "\n")
    steps = re.findall(r"^  build: (\w+) \d+\.\d s$", plain, re.MULTILINE)  # a line per finished step
    assert steps == ["ingest", "streamline", "partition", "to_hardware", "fold", "plumbing", "rtl", "report"]
    assert out.startswith(f"built {tmp_path / 'p'}: ") and out.count("\n") == 1


def test_no_progress_into_a_log(tiny_mlp_onnx, tmp_path, capsys, verilator_cache):
    """stderr that is not a terminal gets no progress: an error stays its one line."""
    code = main(["build", str(tiny_mlp_onnx), "-o", str(tmp_path / "q"), "--cache-dir", str(verilator_cache)])
    out, err = capsys.readouterr()
    assert code == 0 and err == "" and out.startswith("built ")


def test_cli_sim_and_verify_json(built, tmp_path, capsys, verilator_cache):
    x = np.random.default_rng(2).integers(0, 256, size=(3, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    cache = ["--cache-dir", str(verilator_cache)]
    assert main(["sim", str(built.out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"),
                 "--json", *cache]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert sim["frames"] == 3 and sim["output"] == str(tmp_path / "y.npy")
    assert main(["verify", str(built.out), "--input", str(tmp_path / "x.npy"), "--json", *cache]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["passed"] and verified["frames"] == 3 and verified["mismatched_frames"] == 0


def test_cli_verify_shows_its_steps(built, tmp_path, capsys, monkeypatch, verilator_cache):
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 28, 28), np.float32))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["verify", str(built.out), "--input", str(tmp_path / "x.npy"), "--cache-dir", str(verilator_cache)]) == 0
    out, err = capsys.readouterr()
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err).replace("\r", "\n")
    steps = re.findall(r"^  verify: (.+) \d+\.\d s$", plain, re.MULTILINE)
    assert steps == ["model (QONNX execution)", "verilator", "rtlsim (2 frames)"]
    assert out.startswith("bit-exact")

"""Bad input gets exit status 2 and one readable line naming what is at fault, and a failed build
leaves no report.json behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hwgen.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("hwgen: error: ")
    for fragment in fragments:
        assert fragment in err, err


def test_missing_model_file(tmp_path, capsys):
    code, err = run_cli(capsys, "build", tmp_path / "nope.onnx", "-o", tmp_path / "out")
    assert_one_line_error(code, err, "nope.onnx", "no such file")
    assert not (tmp_path / "out" / "report.json").exists()


def test_not_an_onnx_file(tmp_path, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_text("this is not a protobuf")
    code, err = run_cli(capsys, "build", bad, "-o", tmp_path / "out")
    assert_one_line_error(code, err, "model.onnx", "not an ONNX model")
    assert not (tmp_path / "out" / "report.json").exists()


def test_unsupported_op_names_the_node(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], name="my_softmax")], "g", [x], [y])
    path = tmp_path / "softmax.onnx"
    onnx.save(helper.make_model(graph), str(path))
    code, err = run_cli(capsys, "build", path, "-o", tmp_path / "out")
    assert_one_line_error(code, err, "node my_softmax", "'Softmax'", "not supported")
    assert not (tmp_path / "out" / "report.json").exists()


def test_folding_that_does_not_divide(tiny_mlp_onnx, tmp_path, capsys):
    folding = tmp_path / "fold.json"
    folding.write_text(json.dumps({"MVU_1": {"PE": 5}}))  # MH of MVU_1 is 16
    code, err = run_cli(capsys, "build", tiny_mlp_onnx, "-o", tmp_path / "out", "--folding", folding)
    assert_one_line_error(code, err, "MVU_1", "PE")
    assert not (tmp_path / "out" / "report.json").exists()


def test_folding_names_a_missing_layer(tiny_mlp_onnx, tmp_path, capsys):
    folding = tmp_path / "fold.json"
    folding.write_text(json.dumps({"MVU_7": {"PE": 1}}))
    code, err = run_cli(capsys, "build", tiny_mlp_onnx, "-o", tmp_path / "out", "--folding", folding)
    assert_one_line_error(code, err, "MVU_7", "names no layer")
    assert not (tmp_path / "out" / "report.json").exists()


def test_failed_rebuild_removes_the_old_report(tiny_mlp_onnx, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "build", tiny_mlp_onnx, "-o", out)[0] == 0
    assert (out / "report.json").exists()
    folding = tmp_path / "fold.json"
    folding.write_text(json.dumps({"MVU_0": {"SIMD": 5}}))  # MW of MVU_0 is 784
    code, err = run_cli(capsys, "build", tiny_mlp_onnx, "-o", out, "--folding", folding)
    assert_one_line_error(code, err, "MVU_0", "SIMD")
    assert not (out / "report.json").exists()


def test_input_of_the_wrong_shape(tiny_mlp_onnx, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "build", tiny_mlp_onnx, "-o", out)[0] == 0
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((4, 1, 28, 27), np.float32))
    code, err = run_cli(capsys, "sim", out, "--input", x, "--output", tmp_path / "y.npy")
    assert_one_line_error(code, err, "input array", "[4, 1, 28, 27]", "[N, 1, 28, 28]")
    code, err = run_cli(capsys, "verify", out, "--input", x)
    assert_one_line_error(code, err, "input array")


def test_sim_of_an_unfinished_build(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1, 28, 28), np.float32))
    code, err = run_cli(capsys, "sim", tmp_path / "half", "--input", x, "--output", tmp_path / "y.npy")
    assert_one_line_error(code, err, "not a finished build")


def test_console_script_exit_status(tmp_path):
    """The installed `hwgen` command maps the error to exit status 2 too."""
    exe = Path(sys.executable).parent / "hwgen"
    if not exe.exists():
        pytest.skip("hwgen console script not installed in this environment")
    proc = subprocess.run([str(exe), "build", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr


def test_op_of_an_unknown_domain_names_node_and_domain(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    node = helper.make_node("FusedGelu", ["x"], ["y"], name="vendor_op", domain="com.example")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
    path = tmp_path / "vendor.onnx"
    onnx.save(model, str(path))
    code, err = run_cli(capsys, "build", path, "-o", tmp_path / "out")
    assert_one_line_error(code, err, "node vendor_op", "'FusedGelu'", "com.example", "unknown")
    assert not (tmp_path / "out" / "report.json").exists()


def test_graph_without_input(tmp_path, capsys):
    c = helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["c"], ["y"])], "g", [], [y], initializer=[c])
    path = tmp_path / "no_input.onnx"
    onnx.save(helper.make_model(graph), str(path))
    code, err = run_cli(capsys, "build", path, "-o", tmp_path / "out")
    assert_one_line_error(code, err, "no_input.onnx", "no input")

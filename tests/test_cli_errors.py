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


def test_failed_rebuild_leaves_the_earlier_build_intact(tiny_mlp_onnx, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "build", tiny_mlp_onnx, "-o", out)[0] == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    folding = tmp_path / "fold.json"
    folding.write_text(json.dumps({"MVU_0": {"SIMD": 5}}))  # MW of MVU_0 is 784
    code, err = run_cli(capsys, "build", tiny_mlp_onnx, "-o", out, "--folding", folding)
    assert_one_line_error(code, err, "MVU_0", "SIMD")
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no half-written sibling


def test_output_folder_that_is_a_file_or_holds_other_files(tiny_mlp_onnx, tmp_path, capsys):
    afile = tmp_path / "taken"
    afile.write_text("not a folder")
    code, err = run_cli(capsys, "build", tiny_mlp_onnx, "-o", afile)
    assert_one_line_error(code, err, "taken", "is a file")
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8")
    code, err = run_cli(capsys, "build", tiny_mlp_onnx, "-o", other)
    assert_one_line_error(code, err, "photos", "not a hwgen build")
    assert [p.name for p in other.iterdir()] == ["holiday.jpg"]


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


@pytest.fixture(scope="module")
def good_build(tiny_mlp_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "build"
    from hwgen.builder import build
    build(tiny_mlp_onnx, out)
    return out


def test_build_folder_missing_or_broken_files(good_build, tmp_path, capsys):
    import shutil
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1, 28, 28), np.float32))
    broken = tmp_path / "broken"
    shutil.copytree(good_build, broken)
    (broken / "accelerator.json").unlink()
    code, err = run_cli(capsys, "sim", broken, "--input", x, "--output", tmp_path / "y.npy")
    assert_one_line_error(code, err, "accelerator.json", "not a finished build")
    (broken / "accelerator.json").write_text("{ not json")
    code, err = run_cli(capsys, "verify", broken, "--input", x)
    assert_one_line_error(code, err, "accelerator.json", "not an accelerator description")
    shutil.copy(good_build / "accelerator.json", broken / "accelerator.json")
    (broken / "host_post.onnx").write_bytes(b"\x08\x01garbage")
    code, err = run_cli(capsys, "sim", broken, "--input", x, "--output", tmp_path / "y.npy")
    assert_one_line_error(code, err, "host_post.onnx")


def test_truncated_onnx(tiny_mlp_onnx, tmp_path, capsys):
    data = tiny_mlp_onnx.read_bytes()
    for cut in (len(data) // 3, len(data) - 7):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(data[:cut])
        code, err = run_cli(capsys, "build", bad, "-o", tmp_path / f"out{cut}")
        assert_one_line_error(code, err, bad.name)
        assert not (tmp_path / f"out{cut}").exists()


@pytest.mark.parametrize("folding, fragment", [
    ([1, 2], "JSON object"),
    ({"MVU_0": 4}, "'MVU_0'"),
    ({"MVU_0": {"PE": 2.5}}, "positive integer"),
    ({"MVU_0": {"PE": -4}}, "positive integer"),
    ({"StreamingFifo_0": {"depth": True}}, "positive integer"),
])
def test_bad_folding_files(tiny_mlp_onnx, tmp_path, capsys, folding, fragment):
    path = tmp_path / "fold.json"
    path.write_text(json.dumps(folding))
    code, err = run_cli(capsys, "build", tiny_mlp_onnx, "-o", tmp_path / "out", "--folding", path)
    assert_one_line_error(code, err, "folding config", fragment)


def test_bad_numbers_on_the_command_line(tiny_mlp_onnx, tmp_path, capsys):
    code, err = run_cli(capsys, "build", tiny_mlp_onnx, "-o", tmp_path / "out", "--target-fps", "0")
    assert_one_line_error(code, err, "target_fps", "positive")


def test_bad_input_arrays(good_build, tmp_path, capsys):
    cases = {
        "rank.npy": np.zeros((28, 28), np.float32),
        "text.npy": np.array([["a"] * 28] * 28).reshape(1, 1, 28, 28),
        "inf.npy": np.full((2, 1, 28, 28), np.inf, np.float32),
    }
    for name, array in cases.items():
        np.save(tmp_path / name, array)
        code, err = run_cli(capsys, "sim", good_build, "--input", tmp_path / name, "--output", tmp_path / "y.npy")
        assert_one_line_error(code, err, "input array")
    (tmp_path / "notnpy.npy").write_text("1, 2, 3")
    code, err = run_cli(capsys, "verify", good_build, "--input", tmp_path / "notnpy.npy")
    assert_one_line_error(code, err, "notnpy.npy", "not a .npy array")


def test_a_removed_node_is_named_not_pruned(tiny_mlp_onnx, tmp_path, capsys):
    """A node taken out of a valid graph leaves a tensor that is read but never written; a node
    whose result nothing reads is an error too."""
    model = onnx.load(str(tiny_mlp_onnx))
    victim = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    model.graph.node.remove(victim)
    path = tmp_path / "holed.onnx"
    onnx.save(model, str(path))
    code, err = run_cli(capsys, "build", path, "-o", tmp_path / "out")
    assert_one_line_error(code, err, f"tensor {victim.output[0]}", "no node writes it")
    model = onnx.load(str(tiny_mlp_onnx))
    first = model.graph.node[0]
    model.graph.node.append(helper.make_node("Relu", [first.output[0]], ["nobody_reads_this"], name="orphan"))
    path = tmp_path / "orphan.onnx"
    onnx.save(model, str(path))
    code, err = run_cli(capsys, "build", path, "-o", tmp_path / "out2")
    assert_one_line_error(code, err, "node orphan", "nothing uses its result")


def test_a_failing_tool_is_exit_1_naming_tool_and_log(good_build, tmp_path, capsys):
    """Verilator rejecting the RTL (here: a build folder whose Verilog was edited into garbage) is
    not a mistake in the model: one line naming the tool, what it built and where its log is."""
    import shutil
    broken = tmp_path / "edited"
    shutil.copytree(good_build, broken)
    top = json.loads((broken / "accelerator.json").read_text())["top"]
    (broken / "rtl" / f"{top}.v").write_text("module oops(\n")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1, 28, 28), np.float32))
    code = main(["sim", str(broken), "--input", str(x), "--output", str(tmp_path / "y.npy"),
                 "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("hwgen: tool error: verilator failed on design hwgen_accel"), err
    log = err.rsplit("log: ", 1)[1]
    assert Path(log).is_file()


def test_a_failing_yosys_is_exit_1(good_build, tmp_path, capsys):
    import shutil
    broken = tmp_path / "edited"
    shutil.copytree(good_build, broken)
    victim = sorted((broken / "rtl").glob("*.il"))[0]
    victim.write_text("this is not rtlil\n")
    code = main(["synth", str(broken), "--jobs", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("hwgen: tool error: yosys failed on module " + victim.stem), err

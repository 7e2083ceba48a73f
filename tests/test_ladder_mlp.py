"""The test ladder on random BNN MLPs: reference execution == every lowering checkpoint == rtlsim,
bit-exact, without and with random stalls on both streams.

Widths, bit widths and foldings are drawn at random from a fixed seed, a bounded number of cases.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.simulate import check_checkpoints, simulate_build, run_input_model
from hwgen.models.mlp import BnnMlp, randomize

CASES = 4


def draw_case(index: int) -> dict:
    rng = np.random.default_rng(1000 + index)
    bits = [(1, 1), (1, 2), (2, 2), (1, 1)][index % 4]
    hidden = tuple(int(rng.choice([8, 12, 16, 24, 32, 48])) for _ in range(int(rng.integers(1, 3))))
    return {"hidden": hidden, "weight_bits": bits[0], "act_bits": bits[1], "seed": index,
            "side": int(rng.choice([6, 8, 10])), "fold_seed": int(rng.integers(1 << 30))}


def random_folding(report: dict, seed: int) -> dict:
    """A random legal PE/SIMD for every matrix-vector unit of a build."""
    rng = np.random.default_rng(seed)
    folding = {}
    for layer in report["layers"]:
        if layer["op"] != "MVU":
            continue
        pick = lambda n: int(rng.choice([d for d in range(1, n + 1) if n % d == 0]))  # noqa: E731
        folding[layer["name"]] = {"PE": pick(layer["MH"]), "SIMD": pick(layer["MW"])}
    return folding


@pytest.mark.parametrize("index", range(CASES))
def test_ladder(index, tmp_path, verilator_cache):
    case = draw_case(index)
    side = case["side"]
    model = randomize(BnnMlp(in_features=side * side, hidden=case["hidden"], weight_bits=case["weight_bits"],
                             act_bits=case["act_bits"]), seed=case["seed"])
    path = tmp_path / "model.onnx"
    export_brevitas(model, (1, 1, side, side)).save(str(path))
    first = build(path, tmp_path / "probe", BuildConfig(cache_dir=verilator_cache))
    folding = random_folding(first, case["fold_seed"])
    out = tmp_path / "build"
    build(path, out, BuildConfig(folding=folding, cache_dir=verilator_cache))
    applied = {l["name"]: {"PE": l["PE"], "SIMD": l["SIMD"]} for l in json.loads((out / "report.json").read_text())["layers"] if l["op"] == "MVU"}
    assert applied == folding

    x = np.random.default_rng(index).random((12, 1, side, side)).astype(np.float32)
    expected = run_input_model(out, x)
    # every checkpoint of the lowering, executed, equals the input model bit for bit
    stages = check_checkpoints(out, x)
    assert [name for name, exact in stages if not exact] == []
    assert len(stages) >= 8
    # and so does the RTL, with and without stalls
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=index, cache_dir=verilator_cache)
        assert np.array_equal(y, expected), f"rtlsim differs with stall_prob={stall}"
        assert stats["frames"] == len(x)

"""The three kinds of input: a Brevitas module (exported here), a QONNX file, and a FINN-style graph
that already holds MultiThreshold / XnorPopcountMatMul."""

from __future__ import annotations

import numpy as np

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.simulate import run_input_model, simulate_build, verify_build


def test_finn_style_graph_builds_bit_exact(tiny_mlp_onnx, tmp_path, verilator_cache):
    """A streamlined graph (XnorPopcountMatMul, MultiThreshold, BINARY annotations on Mul outputs)
    is a valid input: it builds again, and its rtlsim matches the original QONNX model."""
    first = tmp_path / "first"
    build(tiny_mlp_onnx, first, BuildConfig(cache_dir=verilator_cache))
    finn_style = first / "graphs" / "02_streamline.onnx"
    import onnx
    kinds = {n.op_type for n in onnx.load(str(finn_style)).graph.node}
    assert {"MultiThreshold", "XnorPopcountMatMul"} <= kinds

    second = tmp_path / "second"
    build(finn_style, second, BuildConfig(cache_dir=verilator_cache))
    x = np.random.default_rng(5).random((16, 1, 28, 28)).astype(np.float32)
    y, _ = simulate_build(second, x, cache_dir=verilator_cache)
    assert np.array_equal(y, run_input_model(first, x))
    assert verify_build(second, x, cache_dir=verilator_cache).exact

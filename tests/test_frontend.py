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


def test_a_model_with_its_tensors_in_a_data_file_builds(tiny_mlp_onnx, tmp_path, verilator_cache):
    """torch's newer ONNX exporter keeps the tensors in `model.onnx.data` beside `model.onnx`: the
    build reads them and is bit-exact; a missing or truncated data file is one line naming it."""
    import onnx
    import pytest

    from hwgen.errors import HwgenError

    folder = tmp_path / "external"
    folder.mkdir()
    onnx.save(onnx.load(str(tiny_mlp_onnx)), str(folder / "model.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    out = tmp_path / "b"
    build(folder / "model.onnx", out, BuildConfig(cache_dir=verilator_cache))
    x = np.random.default_rng(5).random((8, 1, 28, 28)).astype(np.float32)
    assert verify_build(out, x, cache_dir=verilator_cache).exact
    data = folder / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(HwgenError, match=r"model.onnx: tensor '.*' needs bytes up to [\d,]+ of 'model.onnx.data', "
                                         r"which has 100: the data file is truncated or not this model's"):
        build(folder / "model.onnx", tmp_path / "c", BuildConfig(cache_dir=verilator_cache))
    data.unlink()
    with pytest.raises(HwgenError, match=r"model.onnx: tensor '.*' is kept in 'model.onnx.data' beside it, which "
                                         r"does not exist: copy the data file with the model"):
        build(folder / "model.onnx", tmp_path / "c", BuildConfig(cache_dir=verilator_cache))
    assert not (tmp_path / "c").exists()

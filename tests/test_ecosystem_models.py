"""The ecosystem's published example models, replicated here from a BNN-PYNQ TFC (nothing is
downloaded): each builds, and `hwgen verify` is bit-exact on MNIST test images.

- the QONNX model zoo's MNIST TFC: TorchScript export, `x.view(x.shape[0], -1)` flatten written as
  Shape -> Gather -> Unsqueeze -> Concat -> Reshape, IR version 6, opset 9;
- the LFC-W1A1 of FINN's notebooks: an early Brevitas export with ONNX `Sign` activations (and
  weights binarized by a `Sign`), IR 4, opset 9;
- FINN's `build_dataflow` test model: a FINN-ONNX graph, `MultiThreshold`s of domain
  `finn.custom_op.general` with `out_scale` / `out_bias`, bipolar MatMuls, scalar Muls and a 1-D
  BatchNorm written as Unsqueeze -> BatchNormalization -> Squeeze; and as that example ships it,
  UINT8 pixels in and `Div, Mul, Add, TopK` out, the class index (int64, annotated UINT32) being
  the graph's output;
- and every IR version from 3 to 13 and opset from 7 to 20, through all checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.builder import build
from hwgen.cli import main
from hwgen.config import BuildConfig
from hwgen.ops import unit_of
from hwgen.simulate import check_checkpoints, run_input_model, simulate_build
from hwgen.models.bnn_pynq import load_checkpoint
from hwgen.models.ecosystem import FINN_DOMAIN, finn_build_dataflow_tfc, finn_onnx_tfc, qonnx_zoo_tfc, sign_activation_tfc, torchscript_export
from hwgen.models.data import mnist_test
from hwgen.models.mlp import BnnMlp, randomize

IMAGES = 200


@pytest.fixture(scope="module")
def tfc(shared_data):
    return load_checkpoint("TFC_1W1A", shared_data / "brevitas_bnn_pynq" / "tfc_1w1a.tar")


@pytest.fixture(scope="module")
def images(shared_data) -> np.ndarray:
    return mnist_test(shared_data)[0][:IMAGES]


def build_and_verify(proto: onnx.ModelProto, x: np.ndarray, tmp_path: Path, cache: Path) -> Path:
    """Build the model as a file; rtlsim must equal QONNX execution of the file, bit for bit."""
    path = tmp_path / "model.onnx"
    onnx.save(proto, str(path))
    out = tmp_path / "build"
    build(path, out, BuildConfig(target_cycles=1024, cache_dir=cache))
    y, stats = simulate_build(out, x, cache_dir=cache)
    expected = run_input_model(out, x)
    mismatched = np.flatnonzero([not np.array_equal(a, e) for a, e in zip(y, expected)])
    assert mismatched.size == 0, f"rtlsim differs from the model on frames {mismatched[:10]}"
    assert stats["cycles_per_frame"] == 1024
    return out


def ops(proto: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in proto.graph.node}


def test_qonnx_zoo_tfc(tfc, images, tmp_path, verilator_cache, capsys):
    proto = qonnx_zoo_tfc(tfc)
    assert (proto.ir_version, proto.opset_import[0].version) == (6, 9)
    assert {"Shape", "Gather", "Unsqueeze", "Concat"} <= ops(proto)
    out = build_and_verify(proto, images, tmp_path, verilator_cache)
    np.save(tmp_path / "x.npy", images[:32])
    assert main(["verify", str(out), "--input", str(tmp_path / "x.npy"), "--cache-dir", str(verilator_cache)]) == 0
    assert "bit-exact: 32/32" in capsys.readouterr().out
    ingested = onnx.load(str(out / "graphs" / "01_ingest.onnx"))
    assert not ops(ingested) & {"Shape", "Gather", "Unsqueeze", "Concat"}
    assert ingested.opset_import[0].version == 13


def test_sign_activation_tfc(tfc, images, tmp_path, verilator_cache):
    proto = sign_activation_tfc(tfc)
    assert proto.ir_version == 4 and "Sign" in ops(proto) and "BipolarQuant" not in ops(proto)
    out = build_and_verify(proto, images, tmp_path, verilator_cache)
    # the input Sign can output 0 (at x = 0.5): the host sends {-1, 0, +1} as 2-bit values; a
    # hidden Sign after an XNOR layer never sees 0 (thresholds found so) and becomes a 1-bit stream
    folded = ModelWrapper(str(out / "graphs" / "05_fold.onnx"))
    mvus = [unit_of(folded, n) for n in folded.graph.node if n.op_type == "MVU"]
    assert mvus[0].input_dtype.name == "INT2"
    assert [u.output_dtype.bitwidth() for u in mvus[:3]] == [1, 1, 1]
    # sign(0) = 0 as ONNX computes it: an input pixel of exactly 0.5 gives 0 on the wire, exactly
    x = images[:4].copy()
    x[:, :, :14] = 0.5
    y, _ = simulate_build(out, x, cache_dir=verilator_cache)
    assert np.array_equal(y, run_input_model(out, x))


@pytest.mark.parametrize("act_bits", [(1, 1, 1), (1, 2, 1)], ids=["w1a1", "w1a2"])
def test_finn_onnx_tfc(tfc, images, act_bits, tmp_path, verilator_cache):
    proto = finn_onnx_tfc(tfc, act_bits)
    assert {n.domain for n in proto.graph.node if n.op_type == "MultiThreshold"} == {FINN_DOMAIN}
    assert {"Unsqueeze", "Squeeze", "BatchNormalization", "Mul"} <= ops(proto)
    build_and_verify(proto, images, tmp_path, verilator_cache)


def test_finn_build_dataflow_tfc(tfc, images, tmp_path, verilator_cache):
    """The class index needs no float transform: an output annotated UINT32 is judged by the values
    TopK can give (0..9), not by its annotation's width, and the top-k runs in hardware."""
    proto = finn_build_dataflow_tfc(tfc)
    assert [n.op_type for n in proto.graph.node][-4:] == ["Div", "Mul", "Add", "TopK"]
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    pixels = np.round(images * 255).astype(np.float32)
    out = build_and_verify(proto, pixels, tmp_path, verilator_cache)
    y, _ = simulate_build(out, pixels[:4], cache_dir=verilator_cache)
    assert y.ravel().tolist() == [7, 2, 1, 0]
    accel = ModelWrapper(str(out / "graphs" / "05_fold.onnx"))
    assert "LabelSelect" in {n.op_type for n in accel.graph.node}


def test_input_outside_the_declared_datatype(tfc, tmp_path, verilator_cache, capsys):
    """A model that declares a BIPOLAR input: 0 or 0.5 in the array is one line and exit 2, for
    `sim` and for `verify`, before anything runs; +-1 runs."""
    path = tmp_path / "bipolar_in.onnx"
    onnx.save(finn_onnx_tfc(tfc, bipolar_input=True), str(path))
    out = tmp_path / "build"
    cache = ["--cache-dir", str(verilator_cache)]
    assert main(["build", str(path), "-o", str(out), "--target-cycles", "1024"]) == 0
    capsys.readouterr()
    x = np.where(np.random.default_rng(0).random((8, 784)) < 0.5, -1.0, 1.0).astype(np.float32)
    np.save(tmp_path / "good.npy", x)
    assert main(["verify", str(out), "--input", str(tmp_path / "good.npy"), *cache]) == 0
    capsys.readouterr()
    for bad_value, shown in [(0.0, "0.0"), (0.5, "0.5"), (np.nan, "nan")]:
        bad = x.copy()
        bad[2, 17] = bad_value
        np.save(tmp_path / "bad.npy", bad)
        for command in (["sim", str(out), "--input", str(tmp_path / "bad.npy"), "--output", str(tmp_path / "y.npy")],
                        ["verify", str(out), "--input", str(tmp_path / "bad.npy")]):
            assert main(command + cache) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1, err
            assert "input array" in err and "[2, 17]" in err and shown in err, err
            if bad_value == bad_value:  # not NaN: named against the declared datatype
                assert "BIPOLAR" in err and "global_in" in err, err


@pytest.mark.parametrize("opset,ir", [(7, 3), (8, 4), (9, 4), (9, 6), (11, 6), (12, 7), (13, 7), (17, 8),
                                      (20, 9), (20, 13)])
def test_ir_versions_and_opsets(opset, ir, tmp_path):
    """Every checkpoint of the build runs bit-exact with the model as given, for IR 3..13 and
    opsets 7..20 (IR 3 lists the initializers among the graph inputs, as that version requires)."""
    model = randomize(BnnMlp(hidden=(32, 16)), seed=1)
    proto = torchscript_export(model, opset)
    if ir < 4:
        present = {i.name for i in proto.graph.input}
        names = {init.name for init in proto.graph.initializer}
        for vi in [vi for vi in proto.graph.value_info if vi.name in names]:
            proto.graph.value_info.remove(vi)
        for init in proto.graph.initializer:
            if init.name not in present:
                proto.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    proto.ir_version = ir
    path = tmp_path / "model.onnx"
    onnx.save(proto, str(path))
    out = tmp_path / "build"
    build(path, out, BuildConfig())
    x = np.random.default_rng(2).random((64, 1, 28, 28)).astype(np.float32)
    results = check_checkpoints(out, x)
    assert [name for name, _ in results][0] == "01_ingest"
    assert all(same for _, same in results), results

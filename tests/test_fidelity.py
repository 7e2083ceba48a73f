"""Fidelity at the edges of float32: integer ranges up to 2^24 are exact everywhere (the model's
arithmetic, QONNX's thresholds, hwgen's search), beyond is refused by name; a 0 where a BIPOLAR
stream is expected is refused, not sent as -1."""

from __future__ import annotations

import numpy as np
import torch
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.datatype import DataType

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.errors import HwgenError
from hwgen.frontend import export_brevitas
from hwgen.simulate import check_checkpoints, run_input_model, simulate_build
from hwgen.streams import to_wire


def wide_dot(inputs: int, path) -> None:
    """(1, inputs) INT8 input -> MatMul by INT8 weights all -128 -> thresholds -> BIPOLAR: the
    accumulator reaches inputs * 2^14 (2^24 for 1,024 inputs)."""
    w = np.full((inputs, 4), -128.0, np.float32)
    thr = np.array([[-(1 << 23)], [0], [1 << 23], [(1 << 24) - 1]], np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["acc"]),
             helper.make_node("MultiThreshold", ["acc", "t"], ["y"], domain="qonnx.custom_op.general",
                              out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0)]
    graph = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, inputs])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(thr, "t")])
    for tensor, dtype in (("x", "INT8"), ("w", "INT8")):
        annotation = onnx.TensorAnnotation(tensor_name=tensor)
        annotation.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key="finn_datatype", value=dtype))
        graph.quantization_annotation.append(annotation)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("qonnx.custom_op.general", 1)])
    proto.ir_version = 8
    onnx.save(proto, str(path))


def test_a_24_bit_accumulator_is_exact(tmp_path, verilator_cache):
    wide_dot(1024, tmp_path / "wide.onnx")
    out = tmp_path / "build"
    build(tmp_path / "wide.onnx", out, BuildConfig(target_cycles=64, cache_dir=verilator_cache))
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (16, 1024)).astype(np.float32)
    x[0] = -128  # the accumulator's extreme: exactly 2^24, on the last threshold
    x[1] = -128
    x[1, :512] = 0  # exactly 2^23, on a threshold too
    assert (x[0] @ np.full(1024, -128.0)) == 1 << 24
    assert all(same for _, same in check_checkpoints(out, x))
    y, _ = simulate_build(out, x, cache_dir=verilator_cache)
    assert np.array_equal(y, run_input_model(out, x))
    assert y[0].tolist() == [1, 1, 1, 1] and y[1].tolist() == [1, 1, 1, -1]


def test_a_25_bit_accumulator_is_refused_by_name(tmp_path):
    wide_dot(1025, tmp_path / "wider.onnx")
    with pytest.raises(HwgenError, match=r"exceeds \+-2\^24"):
        build(tmp_path / "wider.onnx", tmp_path / "build")
    assert not (tmp_path / "build").exists()


def test_zero_is_not_a_bipolar_value_on_the_wire():
    assert to_wire(np.array([-1, 1, 1]), DataType["BIPOLAR"]).tolist() == [0, 1, 1]
    with pytest.raises(HwgenError, match="not a BIPOLAR value"):
        to_wire(np.array([-1, 0, 1]), DataType["BIPOLAR"])


class TypicalBnn(torch.nn.Module):
    """A user's first BNN: Brevitas' default (float-scaled, statistics-calibrated) 8-bit input
    quantizer, a binary hidden layer, and Brevitas' default 8-bit last layer with a float scale
    and a float bias."""

    def __init__(self) -> None:
        super().__init__()
        from brevitas.nn import QuantIdentity, QuantLinear
        from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant

        self.inq = QuantIdentity(return_quant_tensor=False)
        self.l1 = QuantLinear(784, 64, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)
        self.bn1 = torch.nn.BatchNorm1d(64)
        self.a1 = QuantIdentity(act_quant=CommonActQuant, bit_width=1)
        self.l2 = QuantLinear(64, 10, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(self.a1(self.bn1(self.l1(self.inq(x.reshape(x.shape[0], -1))))))


def test_verify_tells_float_rounding_from_a_bit_error(tmp_path, verilator_cache, capsys):
    """The float logits of a typical BNN differ from the model's by float rounding (the host
    applies the last layer's scale after an exact integer sum; the model rounds inside its float
    MatMul): `verify` passes, saying so and by how many ulps. A real bit error in the hardware (one
    weight of the last layer changed in the RTL) fails it, naming the integer mismatch."""
    import re
    import shutil

    from hwgen.cli import main

    torch.manual_seed(0)
    model = TypicalBnn().train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(64, 1, 28, 28))  # the input quantizer's statistics
    model.eval()
    export_brevitas(model, (1, 1, 28, 28)).save(str(tmp_path / "typical.onnx"))
    out = tmp_path / "build"
    build(tmp_path / "typical.onnx", out, BuildConfig(target_cycles=1024, cache_dir=verilator_cache))
    x = np.random.default_rng(0).random((16, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    y, _ = simulate_build(out, x, cache_dir=verilator_cache)
    with torch.no_grad():
        assert np.array_equal(y.argmax(1), model(torch.from_numpy(x)).argmax(1).numpy())
    cache = ["--cache-dir", str(verilator_cache)]
    assert main(["verify", str(out), "--input", str(tmp_path / "x.npy"), *cache]) == 0
    said = capsys.readouterr().out
    assert said.startswith("exact integers (16/16 frames identical") and "ulps" in said, said

    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    last_mvu = max((tampered / "rtl").glob("hwgen_accel_MVU_*.v"))
    text = last_mvu.read_text()
    word = re.search(r"(weights\[0\] = \d+'h)([0-9a-f]+);", text)
    flipped = format(int(word.group(2), 16) ^ 1, f"0{len(word.group(2))}x")
    last_mvu.write_text(text.replace(word.group(0), f"{word.group(1)}{flipped};", 1))
    assert main(["verify", str(tampered), "--input", str(tmp_path / "x.npy"), *cache]) == 1
    said = capsys.readouterr().out
    assert said.startswith("MISMATCH: the accelerator's integer output differs from its integer graph"), said


class ScaledInputMlp(torch.nn.Module):
    """uint8 pixels with a constant input scale (1/255 or 1/256), one binary layer whose
    BatchNorm means sit exactly on accumulator levels (ties), a sign."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        from brevitas.core.scaling import ScalingImplType
        from brevitas.nn import QuantIdentity, QuantLinear
        from brevitas.quant import Uint8ActPerTensorFloat
        from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant

        class Pixels(Uint8ActPerTensorFloat):
            scaling_impl_type = ScalingImplType.CONST
            scaling_init = 255 * scale

        self.inq = QuantIdentity(act_quant=Pixels, return_quant_tensor=False)
        self.fc = QuantLinear(64, 16, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)
        self.bn = torch.nn.BatchNorm1d(16)
        self.sign = QuantIdentity(act_quant=CommonActQuant, bit_width=1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sign(self.bn(self.fc(self.inq(x.reshape(x.shape[0], -1)))))


def on_ties(scale: float, offset: float, tmp_path, verilator_cache) -> tuple[ScaledInputMlp, np.ndarray, Path]:
    """ScaledInputMlp built, with 256 frames whose channel-0 accumulator is frame 0's, put on its
    BatchNorm mean (offset 0) or `offset` levels from it: the same pixels, permuted among the
    inputs channel 0 weighs +1. Every channel's mean is frame 0's accumulator."""
    torch.manual_seed(1)
    model = ScaledInputMlp(scale)
    w = np.where(model.fc.weight.detach().numpy() >= 0, 1, -1)
    rng = np.random.default_rng(3)
    q = rng.integers(0, 256, (512, 64))
    levels = q @ w.T  # the integer accumulators
    with torch.no_grad():
        model.bn.running_mean.copy_(torch.tensor(np.float32(scale) * (levels[0] + offset).astype(np.float32)))
        model.bn.running_var.fill_(1.0 - model.bn.eps)
        model.bn.weight.fill_(1.0)
        model.bn.bias.zero_()
    plus = np.flatnonzero(w[0] > 0)
    frames = [q[0]]
    for _ in range(255):
        row = q[0].copy()
        row[plus] = row[rng.permutation(plus)]
        frames.append(row)
    q_tie = np.array(frames)
    assert np.all(q_tie @ w[0] == levels[0, 0])
    x = ((q_tie + 0.25) * scale).astype(np.float32).reshape(-1, 1, 8, 8)
    model.eval()
    export_brevitas(model, (1, 1, 8, 8)).save(str(tmp_path / "m.onnx"))
    out = tmp_path / "build"
    build(tmp_path / "m.onnx", out, BuildConfig(target_cycles=256, cache_dir=verilator_cache))
    return model, x, out


@pytest.mark.parametrize("scale, offset", [(1 / 256, 0.0), (1 / 255, 0.0), (1 / 255, 0.5)],
                         ids=["pow2_on_ties", "1_over_255_on_ties", "1_over_255_off_ties"])
def test_scaled_input_on_ties(scale, offset, tmp_path, verilator_cache):
    """Inputs that put each channel's accumulator on its BatchNorm mean (offset 0) or half a level
    from it. With a power-of-two input scale the model's float arithmetic is exact and so is the
    accelerator. With 1/255 the model rounds each pixel's product and its sum in float32: off the
    ties that changes nothing (bit-exact), on them the model's sign depends on the pixels' order,
    not only on their integer sum (frames with one sum get both signs: no integer layer can follow
    that), and `verify` says those frames sit on ties the model's rounding decides and passes."""
    from hwgen.simulate import run_input_model, verify_build

    _, x, out = on_ties(scale, offset, tmp_path, verilator_cache)
    result = verify_build(out, x, cache_dir=verilator_cache)
    assert result.integer_mismatches == 0 and result.passed, result.summary()
    if scale == 1 / 256 or offset:
        assert result.exact, result.summary()
        return
    channel0 = run_input_model(out, x)[:, 0]
    assert set(channel0.tolist()) == {-1.0, 1.0}  # one integer sum, both signs: the model's rounding
    assert 0 < result.tie_frames == result.mismatched_frames, result.summary()
    assert f"{result.tie_frames} on a threshold tie that the model's float32 rounding decides" in result.summary()
    assert len(result.tied) == result.tie_frames and len(result.tie_nodes) == 1


def test_a_wrong_threshold_beside_a_tie_is_a_mismatch(tmp_path, verilator_cache):
    """The frames of the test above, every one on a tie at channel 0, and channel 5's threshold
    planted off in the integer graph, from which the hardware is built again (so the hardware
    equals the wrong graph). Each output is judged by its own path: channel 5 lies on no tie, so
    the frames where it differs from the model are a MISMATCH though each has a tie elsewhere;
    frames where only channel 0 differs stay ties."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hwgen.simulate import run_input_model, verify_build
    from hwgen.transforms.float_ties import float_tie_nodes

    _, x, out = on_ties(1 / 255, 0.0, tmp_path, verilator_cache)
    path = out / "graphs" / "03_partition.onnx"
    graph = ModelWrapper(str(path))
    [name] = float_tie_nodes(graph)
    node = next(n for n in graph.graph.node if n.name == name)
    thresholds = graph.get_initializer(node.input[1]).copy()
    thresholds[5] = thresholds.max() + 100_000  # above every accumulator: channel 5 always says -1
    graph.set_initializer(node.input[1], thresholds)
    graph.save(str(path))
    build(tmp_path / "m.onnx", out, BuildConfig(target_cycles=256, cache_dir=verilator_cache), from_step="to_hardware")
    result = verify_build(out, x, cache_dir=verilator_cache)
    flipped = int((run_input_model(out, x)[:, 5] == 1).sum())
    assert 0 < flipped < 256 and result.integer_mismatches == 0 and not result.passed, result.summary()
    assert result.summary().startswith(f"MISMATCH with the input model on {flipped}/256 frames"), result.summary()
    assert result.mismatched_frames == flipped + result.tie_frames and result.tie_frames > 0, result.summary()


def test_ties_are_only_where_the_rounding_reaches(tmp_path, verilator_cache):
    """The frames `verify` may excuse as ties are those with an accumulator within the model's
    rounding bound of a threshold, not every frame: on random pixels few are, and each flagged
    frame has a channel within one level of a threshold."""
    from hwgen.execute import execute_context
    from hwgen.frontend.load import prepare_for_execution
    from hwgen.host import HostIO, load_build_graph
    from hwgen.transforms.float_ties import float_tie_nodes, tie_frames

    torch.manual_seed(1)
    model = ScaledInputMlp(1 / 255).eval()
    export_brevitas(model, (1, 1, 8, 8)).save(str(tmp_path / "m.onnx"))
    out = tmp_path / "build"
    build(tmp_path / "m.onnx", out, BuildConfig(target_cycles=256, cache_dir=verilator_cache))
    graph = prepare_for_execution(load_build_graph(out / "graphs" / "03_partition.onnx"))
    [name] = float_tie_nodes(graph)
    node = next(n for n in graph.graph.node if n.name == name)
    q = np.random.default_rng(0).integers(0, 256, (512, 64))
    ints = HostIO(out).to_integers(((q + 0.25) / 255).astype(np.float32).reshape(-1, 1, 8, 8))
    context = execute_context(graph, ints.reshape(512, -1).astype(np.float32))
    tied = tie_frames(graph, context, 512)
    acc = context[node.input[0]]
    thresholds = graph.get_initializer(node.input[1])
    near = (np.abs(acc[:, :, None] - thresholds[None]) <= 1).any(axis=(1, 2))
    assert tied.sum() < 512 // 10 and np.array_equal(tied, tied & near)

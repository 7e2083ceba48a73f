"""Fuzzing the command line with broken models and folding files: random mutations of a valid
QONNX model (nodes removed or renamed, inputs rewired, initializers cut, attributes and versions
changed, bytes flipped or truncated) and random folding JSON never end in a traceback: `hwgen
build` either builds or exits with status 2 and one line (or 1 for a failing tool)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from hwgen.cli import main
from hwgen.frontend import export_brevitas
from hwgen.models.mlp import BnnMlp, randomize

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "mlp.onnx"
    export_brevitas(randomize(BnnMlp(in_features=64, hidden=(8,)), seed=0), (1, 1, 8, 8)).save(str(path))
    return path


def mutate(proto: onnx.ModelProto, data) -> bytes:
    """One to three random edits of the graph, then maybe of the serialized bytes."""
    graph = proto.graph
    tensors = sorted({t for n in graph.node for t in list(n.input) + list(n.output)} | {"nowhere"})
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["drop_node", "op_type", "rewire", "cut_init", "attribute",
                                          "versions", "duplicate", "input_shape", "domain"]))
        nodes = list(graph.node)
        node = nodes[data.draw(st.integers(0, len(nodes) - 1))] if nodes else None
        if kind == "drop_node" and node is not None:
            graph.node.remove(node)
        elif kind == "op_type" and node is not None:
            node.op_type = data.draw(st.sampled_from(["Foo", "Relu", "Add", "Quant", "Conv", "MatMul", ""]))
        elif kind == "rewire" and node is not None and node.input:
            node.input[data.draw(st.integers(0, len(node.input) - 1))] = data.draw(st.sampled_from(tensors))
        elif kind == "cut_init" and graph.initializer:
            init = graph.initializer[data.draw(st.integers(0, len(graph.initializer) - 1))]
            value = numpy_helper.to_array(init).reshape(-1)
            keep = data.draw(st.integers(0, max(0, value.size - 1)))
            init.CopyFrom(numpy_helper.from_array(value[:keep].copy(), init.name))
        elif kind == "attribute" and node is not None and node.attribute:
            attr = node.attribute[data.draw(st.integers(0, len(node.attribute) - 1))]
            if attr.type == onnx.AttributeProto.INT:
                attr.i = data.draw(st.integers(-3, 40))
            elif attr.type == onnx.AttributeProto.FLOAT:
                attr.f = data.draw(st.floats(allow_nan=True, allow_infinity=True, width=32))
            elif attr.type == onnx.AttributeProto.STRING:
                attr.s = data.draw(st.sampled_from([b"", b"ROUND", b"FLOOR", b"nonsense"]))
        elif kind == "versions":
            proto.ir_version = data.draw(st.integers(0, 14))
            proto.opset_import[0].version = data.draw(st.integers(1, 25))
        elif kind == "duplicate" and node is not None:
            graph.node.append(helper.make_node(node.op_type, list(node.input), list(node.output),
                                               domain=node.domain, name=node.name))
        elif kind == "input_shape":
            dims = graph.input[0].type.tensor_type.shape.dim
            if dims:
                dims[data.draw(st.integers(0, len(dims) - 1))].dim_value = data.draw(st.integers(0, 9))
        elif kind == "domain" and node is not None:
            node.domain = data.draw(st.sampled_from(["", "qonnx.custom_op.general", "com.example", "finn"]))
    raw = bytearray(proto.SerializeToString())
    if data.draw(st.booleans()) and raw:
        if data.draw(st.booleans()):
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        else:
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
    return bytes(raw)


def run_clean(args: list[str], capsys) -> int:
    code = main(args)  # any exception escaping here fails the test
    err = capsys.readouterr().err.strip()
    assert code in (0, 1, 2), code
    if code:
        assert len(err.splitlines()) == 1 and err.startswith("hwgen: "), err
    return code


@FUZZ
@given(data=st.data())
def test_mutated_models_never_trace(small_model, tmp_path_factory, capsys, data):
    work = tmp_path_factory.mktemp("mutant")
    proto = onnx.load(str(small_model))
    (work / "m.onnx").write_bytes(mutate(proto, data))
    run_clean(["build", str(work / "m.onnx"), "-o", str(work / "out"), "--target-cycles", "64"], capsys)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2000) | st.floats(allow_nan=False, width=32) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
layer_names = st.sampled_from(["MVU_0", "MVU_1", "Defaults", "StreamingFifo_0", "StreamingFifo_9", "Thresholding_0", "x"])
foldings = st.dictionaries(layer_names, st.dictionaries(st.sampled_from(["PE", "SIMD", "depth", "foo"]), json_values,
                                                        max_size=3) | json_values, max_size=4) | json_values


@FUZZ
@given(folding=foldings)
def test_random_folding_files_never_trace(small_model, tmp_path_factory, capsys, folding):
    work = tmp_path_factory.mktemp("fold")
    (work / "m.onnx").write_bytes(small_model.read_bytes())
    (work / "fold.json").write_text(json.dumps(folding))
    run_clean(["build", str(work / "m.onnx"), "-o", str(work / "out"), "--folding", str(work / "fold.json")],
              capsys)

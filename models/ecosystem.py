"""The ecosystem's published example models, rebuilt from a Brevitas network so that tests and
benchmarks need nothing downloaded. Each reproduces the graph pattern of the original:

- `qonnx_zoo_tfc`: the QONNX model zoo's MNIST TFC exports. TorchScript export with a dynamic batch
  axis, so the `x.view(x.shape[0], -1)` flatten stays Shape -> Gather -> Unsqueeze -> Concat ->
  Reshape; IR version 6, opset 9.
- `sign_activation_tfc`: early Brevitas exports such as the LFC-W1A1 of FINN's notebooks. ONNX
  `Sign` as the activation and as the weight binarizer; IR 4, opset 9.
- `finn_onnx_tfc`: FINN's `build_dataflow` test model, a FINN-ONNX graph. `MultiThreshold`s of
  domain `finn.custom_op.general` with `out_scale` / `out_bias`, BIPOLAR-annotated weights, a scalar
  Mul after each MatMul and a 1-D BatchNorm written as Unsqueeze -> BatchNormalization -> Squeeze.
- `finn_build_dataflow_tfc`: the same graph as FINN's `build_dataflow` example ships it: a UINT8
  pixel input (0..255) thresholded by a first `MultiThreshold`, and the classifier's output going
  through `Div -> Mul -> Add -> TopK`, the graph's output being the TopK index (int64, annotated
  UINT32).
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from brevitas.nn import QuantLinear
from onnx import TensorProto, helper, numpy_helper

import hwgen

FINN_DOMAIN = "finn.custom_op.general"


def torchscript_export(model, opset: int) -> onnx.ModelProto:
    """The TorchScript exporter with a dynamic batch axis: the flatten stays shape arithmetic."""
    return hwgen.export(model, (1, 1, 28, 28), dynamo=False, opset_version=opset, input_names=["inp"],
                           dynamic_axes={"inp": {0: "batch"}}).model


def qonnx_zoo_tfc(model) -> onnx.ModelProto:
    proto = torchscript_export(model, opset=9)
    proto.ir_version = 6
    return proto


def sign_activation_tfc(model) -> onnx.ModelProto:
    """Every BipolarQuant (activations and weights) replaced by ONNX Sign, as early exports wrote."""
    proto = torchscript_export(model, opset=9)
    nodes = proto.graph.node
    for index, node in enumerate(list(nodes)):
        if node.op_type == "BipolarQuant":
            nodes.remove(node)
            nodes.insert(index, helper.make_node("Sign", [node.input[0]], [node.output[0]],
                                                 name=node.name.replace("BipolarQuant", "Sign")))
    return proto


def finn_onnx_tfc(model, act_bits=(1, 1, 1), weight_scale: float = 0.0371,
                  bipolar_input: bool = False, uint8_topk: bool = False) -> onnx.ModelProto:
    """A BNN-PYNQ TFC written as FINN-ONNX: thresholds as MultiThreshold (bipolar: out_scale 2,
    out_bias -1; 2-bit: out_scale 0.5, out_bias -1), BIPOLAR-annotated weights, a scalar Mul after
    each MatMul, 1-D BatchNorm between Unsqueeze and Squeeze. With `bipolar_input` the graph starts
    at the first MatMul and declares its (1, 784) input BIPOLAR. With `uint8_topk` (FINN's
    `build_dataflow` example) the input is the UINT8 pixel, thresholded at 128 into +-1, and the
    last layer ends in Div, Mul, Add and a TopK whose index is the graph's output."""
    nodes, inits, bipolar = [], [], []

    def const(name: str, value, dtype=np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def threshold(x: str, out: str, channels: int, bits: int, index: int) -> None:
        if bits == 1:
            thr, attrs = np.zeros((channels, 1)), dict(out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0)
        else:
            thr, attrs = np.tile([-0.5, 0.0, 0.5], (channels, 1)), dict(out_dtype="INT2", out_scale=0.5, out_bias=-1.0)
        nodes.append(helper.make_node("MultiThreshold", [x, const(f"thr{index}", thr)], [out], domain=FINN_DOMAIN,
                                      name=f"MultiThreshold_{index}", **attrs))

    if bipolar_input:
        x, in_shape = "global_in", [1, 784]
    elif uint8_topk:
        x, in_shape = "a0", [1, 1, 28, 28]
        nodes.append(helper.make_node("Reshape", ["global_in", const("flat", [1, -1], np.int64)], ["v"], name="Reshape_0"))
        nodes.append(helper.make_node("MultiThreshold", ["v", const("thr0", np.full((1, 1), 127.5))], ["a0"],
                                      domain=FINN_DOMAIN, name="MultiThreshold_0", out_dtype="BIPOLAR",
                                      out_scale=2.0, out_bias=-1.0))
    else:
        x, in_shape = "a0", [1, 1, 28, 28]
        nodes.append(helper.make_node("Reshape", ["global_in", const("flat", [1, -1], np.int64)], ["v"], name="Reshape_0"))
        nodes.append(helper.make_node("Mul", ["v", const("two", 2.0)], ["v2"], name="Mul_0"))
        nodes.append(helper.make_node("Add", ["v2", const("minus_one", -1.0)], ["v3"], name="Add_0"))
        threshold("v3", "a0", 1, 1, 0)
    linears = [m for m in model.modules() if isinstance(m, QuantLinear)]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for i, (linear, bn) in enumerate(zip(linears, norms)):
        w = np.where(linear.weight.detach().numpy() >= 0, 1.0, -1.0).T
        bipolar.append(const(f"W{i}", w))
        nodes.append(helper.make_node("MatMul", [x, f"W{i}"], [f"acc{i}"], name=f"MatMul_{i}"))
        nodes.append(helper.make_node("Mul", [f"acc{i}", const(f"scale{i}", weight_scale)], [f"s{i}"], name=f"Mul_{i + 1}"))
        last = i == len(linears) - 1
        if last and uint8_topk:
            # BNN-PYNQ's TensorNorm, one scalar affine for all classes, then the class index
            std = float(np.sqrt(bn.running_var.mean().item() + bn.eps))
            nodes.append(helper.make_node("Div", [f"s{i}", const("norm_std", std)], ["d"], name="Div_0"))
            nodes.append(helper.make_node("Mul", ["d", const("norm_weight", float(bn.weight.mean()))], ["m"],
                                          name=f"Mul_{i + 2}"))
            nodes.append(helper.make_node("Add", ["m", const("norm_bias", float(bn.bias.mean()))], ["b"],
                                          name="Add_1"))
            nodes.append(helper.make_node("TopK", ["b", const("k", [1], np.int64)], ["values", "global_out"],
                                          axis=-1, name="TopK_0"))
            break
        nodes.append(helper.make_node("Unsqueeze", [f"s{i}"], [f"u{i}"], axes=[2], name=f"Unsqueeze_{i}"))
        params = [const(f"bn{i}_{k}", getattr(bn, k).detach().numpy())
                  for k in ("weight", "bias", "running_mean", "running_var")]
        nodes.append(helper.make_node("BatchNormalization", [f"u{i}", *params], [f"n{i}"], epsilon=bn.eps,
                                      name=f"BatchNormalization_{i}"))
        out = "global_out" if last else f"q{i}"
        nodes.append(helper.make_node("Squeeze", [f"n{i}"], [out], axes=[2], name=f"Squeeze_{i}"))
        if not last:
            x = f"a{i + 1}"
            threshold(out, x, w.shape[1], act_bits[i], i + 1)
    out_info = helper.make_tensor_value_info("global_out", TensorProto.INT64 if uint8_topk else TensorProto.FLOAT,
                                             [1, 1] if uint8_topk else [1, 10])
    graph = helper.make_graph(nodes, "tfc_w1a1_finn",
                              [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, in_shape)],
                              [out_info], initializer=inits)
    annotated = [(t, "BIPOLAR") for t in bipolar + (["global_in"] if bipolar_input else [])]
    if uint8_topk:
        annotated += [("global_in", "UINT8"), ("global_out", "UINT32")]
    for tensor, dtype in annotated:
        annotation = onnx.TensorAnnotation(tensor_name=tensor)
        annotation.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key="finn_datatype", value=dtype))
        graph.quantization_annotation.append(annotation)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11), helper.make_opsetid(FINN_DOMAIN, 1)])
    proto.ir_version = 6
    return proto


def finn_build_dataflow_tfc(model) -> onnx.ModelProto:
    """FINN's `build_dataflow` example model: UINT8 pixels in, the TopK class index out. The
    checkpoint's binary weights are +-1 (scale 1), so it classifies as the Brevitas model does."""
    return finn_onnx_tfc(model, weight_scale=1.0, uint8_topk=True)

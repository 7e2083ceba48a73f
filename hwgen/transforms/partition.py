"""Split the streamlined graph into what runs on the host and what becomes the accelerator.

    [host pre]  float ops up to the input quantizer      -> integer accelerator input
    [accel]     MatMul / XnorPopcountMatMul / MultiThreshold / TopK, all integer
    [host post] the exact float output transform (scales, BatchNorm, ...) after the last layer

The accelerator region starts at the first integer layer and grows through every op hardware can
run. A float op left *between* two hardware ops would split the accelerator: that is reported by
node name instead of silently running part of the network on the CPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.errors import HwgenError
from hwgen.transforms.graph import const

LAYER_OPS = ("MatMul", "XnorPopcountMatMul")


def _is_hardware(model: ModelWrapper, node) -> bool:
    if node.op_type in LAYER_OPS:
        w = const(model, node.input[1])
        return w is not None and model.get_tensor_datatype(node.input[0]).is_integer()
    if node.op_type == "MultiThreshold":
        return model.get_tensor_datatype(node.input[0]).is_integer()
    if node.op_type in ("TopK", "ArgMax"):
        return model.get_tensor_datatype(node.input[0]).is_integer()
    return node.domain == "hwgen.ops"


def _reaches(model: ModelWrapper, start, target) -> bool:
    """Whether `target` is downstream of node `start`."""
    seen, frontier = set(), list(start.output)
    while frontier:
        for c in model.find_consumers(frontier.pop()) or []:
            if c.name == target.name:
                return True
            if c.name not in seen:
                seen.add(c.name)
                frontier.extend(c.output)
    return False


@dataclass
class Partition:
    pre: ModelWrapper
    accel: ModelWrapper
    post: ModelWrapper


def _submodel(model: ModelWrapper, nodes: list, inp: str, out: str) -> ModelWrapper:
    proto = copy.deepcopy(model.model)
    graph = proto.graph
    keep = {n.name for n in nodes}
    for node in list(graph.node):
        if node.name not in keep:
            graph.node.remove(node)
    shapes = {inp: model.get_tensor_shape(inp), out: model.get_tensor_shape(out)}
    # keep the model's own element types at its edges (e.g. int64 indices out of a TopK)
    types = {v.name: v.type.tensor_type.elem_type for v in list(graph.input) + list(graph.output)}
    del graph.input[:]
    del graph.output[:]
    graph.input.append(helper.make_tensor_value_info(inp, types.get(inp, 1), shapes[inp]))
    graph.output.append(helper.make_tensor_value_info(out, types.get(out, 1), shapes[out]))
    used = {name for n in graph.node for name in n.input}
    for init in list(graph.initializer):
        if init.name not in used:
            graph.initializer.remove(init)
    for vi in list(graph.value_info):
        if vi.name in (inp, out):
            graph.value_info.remove(vi)
    sub = ModelWrapper(proto)
    for name in (inp, out):
        sub.set_tensor_datatype(name, model.get_tensor_datatype(name))
    return sub


def split_host_and_accelerator(model: ModelWrapper) -> Partition:
    nodes = list(model.graph.node)
    first = next((n for n in nodes if n.op_type in LAYER_OPS and _is_hardware(model, n)), None)
    if first is None:
        raise HwgenError("found no integer layer to build: is there a quantizer before the first "
                         "MatMul, and are its weights quantized?")
    region, frontier = {first.name}, [first]
    while frontier:
        node = frontier.pop()
        for out in node.output:
            for c in model.find_consumers(out) or []:
                if c.name not in region and _is_hardware(model, c):
                    region.add(c.name)
                    frontier.append(c)
    accel_nodes = [n for n in nodes if n.name in region]
    # tensors crossing the region's border
    produced = {o for n in accel_nodes for o in n.output}
    inputs = {i for n in accel_nodes for i in n.input if i not in produced and const(model, i) is None}
    graph_outputs = {o.name for o in model.graph.output}
    outputs = {o for n in accel_nodes for o in n.output
               if o in graph_outputs or any(c.name not in region for c in model.find_consumers(o) or [])}
    # anything downstream of the region that feeds back into it splits the accelerator
    downstream, frontier = set(), [o for o in outputs]
    while frontier:
        t = frontier.pop()
        for c in model.find_consumers(t) or []:
            if c.name in region:
                raise HwgenError(
                    f"op '{c.op_type}' sits between hardware layers but has no hardware form "
                    "(a float leftover would split the accelerator)",
                    where=f"node {c.name}",
                )
            if c.name not in downstream:
                downstream.add(c.name)
                frontier.extend(c.output)
    # a layer left downstream means a float op cut the accelerator in two: name that op
    stranded = [n for n in nodes if n.name in downstream and n.op_type in LAYER_OPS]
    if stranded:
        culprits = [n for n in nodes if n.name in downstream and not _is_hardware(model, n)
                    and _reaches(model, n, stranded[0])]
        culprit = culprits[0] if culprits else stranded[0]
        raise HwgenError(
            f"op '{culprit.op_type}' sits between hardware layers but has no hardware form "
            f"(it would split the accelerator before layer {stranded[0].name})",
            where=f"node {culprit.name}",
        )
    for n in nodes:
        if n.name in downstream:
            continue
        if n.name not in region and any(i in produced for i in n.input):
            raise HwgenError(f"op '{n.op_type}' cannot run in hardware", where=f"node {n.name}")
    if len(inputs) != 1 or len(outputs) != 1:
        raise HwgenError(f"the accelerator needs one input and one output stream, found inputs "
                         f"{sorted(inputs)} and outputs {sorted(outputs)}")
    (inp,), (out,) = inputs, outputs
    if not model.get_tensor_datatype(inp).is_integer():
        raise HwgenError("the accelerator input is not integer: add an input quantizer", where=f"tensor {inp}")
    pre_nodes = [n for n in nodes if n.name not in region and n.name not in downstream]
    post_nodes = [n for n in nodes if n.name in downstream]
    model_in, model_out = model.graph.input[0].name, model.graph.output[0].name
    return Partition(
        pre=_submodel(model, pre_nodes, model_in, inp),
        accel=_submodel(model, accel_nodes, inp, out),
        post=_submodel(model, post_nodes, out, model_out),
    )

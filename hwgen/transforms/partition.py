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
from qonnx.transformation.general import SortGraph
from qonnx.transformation.infer_shapes import InferShapes

from hwgen.errors import HwgenError
from hwgen.transforms.graph import const, fresh_name, single_consumer

LAYER_OPS = ("MatMul", "XnorPopcountMatMul", "Conv")
#: ops that hardware runs when their input is integer (a flatten folds into the next layer's weights)
INTEGER_OPS = ("MultiThreshold", "TopK", "ArgMax", "MaxPool", "Transpose")


def _is_hardware(model: ModelWrapper, node) -> bool:
    if node.op_type in LAYER_OPS:
        w = const(model, node.input[1])
        return w is not None and model.get_tensor_datatype(node.input[0]).is_integer()
    if node.op_type in ("Reshape", "Flatten"):
        # in hardware a flatten only exists folded into the next layer's weights; a flatten at
        # the end (a feature map as output) reorders channel-last to channel-first on the host
        reader = single_consumer(model, node.output[0])
        return reader is not None and reader.op_type in ("MatMul", "XnorPopcountMatMul") \
            and model.get_tensor_datatype(node.input[0]).is_integer()
    if node.op_type in INTEGER_OPS:
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
    return sub.transform(SortGraph(), cleanup=False).transform(InferShapes(), cleanup=False)


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
    inp_nhwc, out_nhwc = _channels_last_edges(model, pre_nodes, accel_nodes, post_nodes, inp, out)
    return Partition(
        pre=_submodel(model, pre_nodes, model_in, inp_nhwc),
        accel=_submodel(model, accel_nodes, inp_nhwc, out_nhwc),
        post=_submodel(model, post_nodes, out_nhwc, model_out),
    )


def _channels_last_edges(model: ModelWrapper, pre: list, accel: list, post: list, inp: str,
                         out: str) -> tuple[str, str]:
    """Streams are channel-last: where a tensor of rank 3 or more (N, C, ...) crosses the border,
    the host transposes it to (N, ..., C) and the accelerator graph starts (ends) with the inverse
    Transpose, which keeps each checkpoint executable; lowering to hardware then drops it. A
    feature map that is the model's output comes back through the host's inverse transpose too."""
    def transpose(src: str, perm: list[int], name: str, dst: str | None = None) -> tuple[str, object]:
        shape = model.get_tensor_shape(src)
        if dst is None:
            dst = fresh_name(model, name)
            model.graph.value_info.append(helper.make_tensor_value_info(dst, 1, [shape[i] for i in perm]))
        model.set_tensor_datatype(dst, model.get_tensor_datatype(src))
        node = helper.make_node("Transpose", [src], [dst], perm=perm, name=name)
        return dst, node

    def perms(rank: int) -> tuple[list[int], list[int]]:
        last = [0, *range(2, rank), 1]
        return last, [last.index(i) for i in range(rank)]

    rank_in = len(model.get_tensor_shape(inp))
    if rank_in >= 3:
        to_last, to_first = perms(rank_in)
        nhwc, to_nhwc = transpose(inp, to_last, "HostToChannelsLast")
        nchw, to_nchw = transpose(nhwc, to_first, "StreamToChannelsFirst")
        for node in accel:
            node.input[:] = [nchw if i == inp else i for i in node.input]
        pre.append(to_nhwc)
        accel.insert(0, to_nchw)
        model.graph.node.extend([to_nhwc, to_nchw])
        inp = nhwc
    rank_out = len(model.get_tensor_shape(out))
    if rank_out >= 3:
        to_last, to_first = perms(rank_out)
        if out == model.graph.output[0].name:
            # the accelerator's last unit writes a new tensor; the host's transpose restores `out`
            core = fresh_name(model, "t")
            model.graph.value_info.append(helper.make_tensor_value_info(core, 1, model.get_tensor_shape(out)))
            model.set_tensor_datatype(core, model.get_tensor_datatype(out))
            producer = model.find_producer(out)
            producer.output[:] = [core if o == out else o for o in producer.output]
            nhwc, to_nhwc = transpose(core, to_last, "StreamToChannelsLast")
            _, to_nchw = transpose(nhwc, to_first, "HostToChannelsFirst", dst=out)
        else:
            nhwc, to_nhwc = transpose(out, to_last, "StreamToChannelsLast")
            nchw, to_nchw = transpose(nhwc, to_first, "HostToChannelsFirst")
            for node in post:
                node.input[:] = [nchw if i == out else i for i in node.input]
        accel.append(to_nhwc)
        post.insert(0, to_nchw)
        model.graph.node.extend([to_nhwc, to_nchw])
        out = nhwc
    return inp, out

"""Split the streamlined graph into what runs on the host and what becomes the accelerator.

    [host pre]  float ops up to the input quantizer      -> one integer accelerator input
    [accel]     every integer op downstream of it: layers, thresholds, joins, pools, tables
    [host post] the exact float output transform (scales, BatchNorm, ...) after the last layer

The accelerator input is the one integer tensor that the host computes and hardware ops read;
the accelerator is every hardware op downstream of it (forks and joins included), its output the
one tensor that leaves it. A float op that hardware cannot run but that sits *between* hardware ops
(it reads what the accelerator computes and hardware reads its result) would split the
accelerator: that is reported by node name instead of silently running part of the network on
the CPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.general import SortGraph
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from hwgen.errors import HwgenError
from hwgen.ops.integer import DOMAIN as INTEGER_DOMAIN
from hwgen.transforms.graph import const, fresh_name, single_consumer
from hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds import FLOAT32_EXACT, accumulator_range

LAYER_OPS = ("MatMul", "XnorPopcountMatMul", "Conv")
#: ops that hardware runs when their inputs are integer (a flatten folds into the next layer's weights)
INTEGER_OPS = ("MultiThreshold", "TopK", "ArgMax", "MaxPool", "Transpose", "Concat")


#: every op the accelerator part of the graph may hold (what TO_HARDWARE lowers)
ACCELERATOR_OPS = frozenset(LAYER_OPS + INTEGER_OPS + ("Reshape", "Flatten", "Lookup", "ScaledAdd", "SumPool"))


def _is_hardware(model: ModelWrapper, node) -> bool:
    dynamic = [t for t in node.input if t and const(model, t) is None]
    integer = bool(dynamic) and all(model.get_tensor_datatype(t).is_integer() for t in dynamic)
    if node.op_type in LAYER_OPS:
        return const(model, node.input[1]) is not None and integer
    if node.op_type in ("Reshape", "Flatten"):
        # in hardware a flatten only exists folded into the next layer's weights; a flatten at
        # the end (a feature map as output) reorders channel-last to channel-first on the host
        reader = single_consumer(model, node.output[0])
        return reader is not None and reader.op_type in ("MatMul", "XnorPopcountMatMul") and integer
    if node.op_type in INTEGER_OPS or node.domain == INTEGER_DOMAIN:
        return integer
    return node.domain == "hwgen.ops"


def _value_range(model: ModelWrapper, tensor: str) -> tuple[int, int] | None:
    """The least and most value an integer tensor can take, judged from what produces it rather
    than from its annotation: a class index out of TopK / ArgMax lies in [0, classes - 1] whatever
    integer type its file declares, a layer's accumulator within its weights' reach. None for a
    float tensor."""
    producer = model.find_producer(tensor)
    if producer is not None and producer.op_type in ("TopK", "ArgMax") and tensor == producer.output[-1]:
        shape = model.get_tensor_shape(producer.input[0])
        axis = get_by_name(producer.attribute, "axis")
        axis = (axis.i if axis is not None else (-1 if producer.op_type == "TopK" else 0))
        return 0, int(shape[axis]) - 1
    found = accumulator_range(model, tensor)
    if found is None:
        return None
    return int(found[0].min()), int(found[1].max())


def _downstream(model: ModelWrapper, tensors: set[str]) -> set[str]:
    """Names of the nodes that (transitively) read any of `tensors`."""
    seen: set[str] = set()
    frontier = list(tensors)
    while frontier:
        for c in model.find_consumers(frontier.pop()) or []:
            if c.name not in seen:
                seen.add(c.name)
                frontier.extend(c.output)
    return seen


@dataclass
class Partition:
    pre: ModelWrapper
    accel: ModelWrapper
    post: ModelWrapper


def _accelerator_input(model: ModelWrapper, nodes: list, hardware: set[str]) -> str:
    """The one integer tensor the host hands to hardware ops; a second one that is computed from
    the first through a float op names that op as splitting the accelerator."""
    producers = {o: n for n in nodes for o in n.output}
    entering = []
    for n in nodes:
        if n.name not in hardware:
            continue
        for t in n.input:
            if t and const(model, t) is None and (t not in producers or producers[t].name not in hardware):
                entering.append(t)
    entering = list(dict.fromkeys(entering))
    if not entering:
        raise HwgenError("found no integer layer to build: is there a quantizer before the first "
                         "MatMul, and are its weights quantized?")
    after_hardware = _downstream(model, {o for n in nodes if n.name in hardware for o in n.output})
    first = [t for t in entering if t not in producers or producers[t].name not in after_hardware]
    later = [t for t in entering if t not in first]
    if later:
        culprit = producers[later[0]]
        while True:  # up to the first float op after the hardware
            earlier = [producers[t] for t in culprit.input if t in producers and producers[t].name not in hardware
                       and producers[t].name in after_hardware]
            if not earlier:
                break
            culprit = earlier[0]
        reader = next(c for c in model.find_consumers(later[0]) if c.name in hardware)
        raise HwgenError(f"op '{culprit.op_type}' sits between hardware layers but has no hardware form "
                         f"(a float leftover would split the accelerator before {reader.name})",
                         where=f"node {culprit.name}")
    if len(first) != 1:
        raise HwgenError(f"the accelerator needs one input stream, but integer tensors {first} enter it "
                         "from the host: quantize the network's input once")
    return first[0]


def split_host_and_accelerator(model: ModelWrapper) -> Partition:
    nodes = list(model.graph.node)
    hardware = {n.name for n in nodes if _is_hardware(model, n)}
    inp = _accelerator_input(model, nodes, hardware)
    if not model.get_tensor_datatype(inp).is_integer():
        raise HwgenError("the accelerator input is not integer: add an input quantizer", where=f"tensor {inp}")
    # the region: hardware ops reachable from the input through hardware ops
    region: set[str] = set()
    available = {inp}
    changed = True
    while changed:
        changed = False
        for n in nodes:
            if n.name in region or n.name not in hardware:
                continue
            dynamic = [t for t in n.input if t and const(model, t) is None]
            if dynamic and all(t in available for t in dynamic):
                region.add(n.name)
                available.update(n.output)
                changed = True
    accel_nodes = [n for n in nodes if n.name in region]
    graph_outputs = {o.name for o in model.graph.output}
    outputs = list(dict.fromkeys(o for n in accel_nodes for o in n.output
                                 if o in graph_outputs or any(c.name not in region for c in model.find_consumers(o) or [])))
    post_names = _downstream(model, set(outputs)) - region
    for n in nodes:
        if n.name in post_names and any(c.name in region for o in n.output for c in model.find_consumers(o) or []):
            raise HwgenError(f"op '{n.op_type}' sits between hardware layers but has no hardware form "
                             "(a float leftover would split the accelerator)", where=f"node {n.name}")
    stranded = [n for n in nodes if n.name in hardware and n.name not in region and n.op_type in LAYER_OPS]
    if stranded:
        culprit = next((n for n in nodes if n.name in post_names and n.name not in hardware), stranded[0])
        raise HwgenError(f"op '{culprit.op_type}' sits between hardware layers but has no hardware form "
                         f"(it would split the accelerator before layer {stranded[0].name})",
                         where=f"node {culprit.name}")
    if len(outputs) != 1:
        readers = [c for o in outputs for c in model.find_consumers(o) or [] if c.name not in region]
        where = f"node {readers[0].name}" if readers else None
        raise HwgenError(f"the integer layers end in {len(outputs)} tensors ({', '.join(outputs[:4])}"
                         f"{', ...' if len(outputs) > 4 else ''}) that float ops after them combine, where an "
                         "accelerator has one output stream: put a quantizer after the ops that combine them, "
                         "so that the join is integer", where=where)
    (out,) = outputs
    found = _value_range(model, out)
    if found is not None and max(-found[0], found[1]) > FLOAT32_EXACT:
        raise HwgenError(f"the accelerator's output takes values in [{found[0]}, {found[1]}], beyond +-2^24, "
                         "where the host's float32 output transform is not exact", where=f"tensor {out}")
    pre_names = {n.name for n in nodes} - region - post_names
    for n in nodes:
        if n.name in pre_names and any(t in available for t in n.input):
            raise HwgenError(f"op '{n.op_type}' cannot run in hardware", where=f"node {n.name}")
    pre_nodes = [n for n in nodes if n.name in pre_names]
    post_nodes = [n for n in nodes if n.name in post_names]
    model_in, model_out = model.graph.input[0].name, model.graph.output[0].name
    inp_nhwc, out_nhwc = _channels_last_edges(model, pre_nodes, accel_nodes, post_nodes, inp, out)
    return Partition(
        pre=_submodel(model, pre_nodes, model_in, inp_nhwc),
        accel=_submodel(model, accel_nodes, inp_nhwc, out_nhwc),
        post=_submodel(model, post_nodes, out_nhwc, model_out),
    )


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

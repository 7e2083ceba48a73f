"""UseFrameMVUs: a convolution whose weights are in DRAM reads them once a frame over its image held
on chip (`hwgen.units.frame_mvu`), and the streams after it stay channel-major until a unit needs
another order (`hwgen.streams`, Order).

    SlidingWindow -> DramMVU                       =>  FrameMVU                          out in NF groups
    (G groups) -> Requantize | Thresholding         =>  the same with channel_groups = G
    (G groups) -> AddStreams <- x (channel-last)    =>  x -> Reorder(1 -> G) -> AddStreams(channel_groups = G)
    (G groups) -> FrameMVU                          =>  FrameMVU(input_groups = G)        where it takes them
    (G groups) -> any other unit, or the output     =>  Reorder(G -> 1) -> it

`--weight-memory frame`, after `ChooseWeightMemories` has moved the weights to DRAM: a DramMVU
holds its pass's im2col windows and results, so where block RAM is short a frame reads its weights
many times; a FrameMVU holds the image and reads them once. Folding is the DramMVU's: PE, SIMD,
products. A convolution whose SIMD does not divide its input channels (the window's folds would
cross kernel positions) stays a DramMVU. Where the order changes, a Reorder holds a whole frame;
beside a FrameMVU a shortcut must hold that much anyway. A unit in a channel-major stream takes a
PE that divides a group's channels (the PE folding gave it, or the largest divisor of both).
"""

from __future__ import annotations

import math

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.ops import unit_of
from hwgen.transforms.graph import HWGEN_DOMAIN, make_node
from hwgen.units.frame_mvu import takes_groups

#: units whose parameters per channel follow a grouped order (`channel_groups`)
GROUPED_OPS = ("Requantize", "Thresholding", "AddStreams")


class UseFrameMVUs(Transformation):
    def apply(self, model: ModelWrapper):
        if not _fuse(model):
            return model, False
        _set_orders(model)
        return model, True


def _fuse(model: ModelWrapper) -> bool:
    """Each SlidingWindow -> DramMVU pair (the window feeding nothing else, the DramMVU in one
    pass, its SIMD dividing the channels) as one FrameMVU, named as the DramMVU; whether any."""
    fused = False
    for node in list(model.graph.node):
        if node.op_type != "DramMVU":
            continue
        window_node = model.find_producer(node.input[0])
        if (window_node is None or window_node.op_type != "SlidingWindow"
                or len(model.find_consumers(window_node.output[0]) or []) != 1):
            continue
        window, mvu = unit_of(model, window_node), unit_of(model, node)
        if window.channels % mvu.SIMD or mvu.passes != 1:
            continue
        attrs = {name: getattr(window, name) for name in ("in_h", "in_w", "channels", "kernel_h", "kernel_w",
                                                           "stride_h", "stride_w", "pad_top", "pad_left",
                                                           "pad_bottom", "pad_right", "pad_value")}
        attrs.update({name: int(getattr(mvu, name)) for name in ("MH", "PE", "SIMD", "out_bias", "data_bits",
                                                                 "offset", "products_in_luts", "packed_products")})
        attrs.update(input_dtype=window.input_dtype.name, window_dtype=window.output_dtype.name,
                     weight_dtype=mvu.weight_dtype.name, output_dtype=mvu.output_dtype.name)
        frame = make_node("FrameMVU", [window_node.input[0], *node.input[1:]], list(node.output),
                          domain=HWGEN_DOMAIN, name=node.name, **attrs)
        index = list(model.graph.node).index(window_node)
        model.graph.node.remove(window_node)
        model.graph.node.remove(node)
        model.graph.node.insert(index, frame)
        fused = True
    return fused


def _set_orders(model: ModelWrapper) -> None:
    """Walk the graph in order, each tensor's channel groups from its producer (see the module
    docstring), a Reorder where a consumer needs another order."""
    groups: dict[str, int] = {}  # tensor -> its channel groups (absent: channel-last)
    frames: dict[str, tuple[int, int]] = {}  # tensor -> (pixels, channels) of a grouped one
    reordered: dict[tuple[str, int], str] = {}

    def reorder(node, index: int, to: int, pixels: int, channels: int) -> None:
        """Input `index` of `node` through a Reorder to `to` groups (one per tensor and order)."""
        tensor = node.input[index]
        if (tensor, to) not in reordered:
            out = model.make_new_valueinfo_name()
            model.set_tensor_datatype(out, model.get_tensor_datatype(tensor))
            model.set_tensor_shape(out, model.get_tensor_shape(tensor))
            model.graph.node.insert(list(model.graph.node).index(node), _reorder_node(
                model, tensor, out, groups.get(tensor, 1), to, pixels, channels, f"Reorder_{tensor}_{to}"))
            reordered[(tensor, to)] = out
        node.input[index] = reordered[(tensor, to)]

    def set_attr(node, **values: int) -> None:
        op = getCustomOp(node)
        for name, value in values.items():
            op.set_nodeattr(name, int(value))

    for node in list(model.graph.node):
        streams = getCustomOp(node).stream_counts()[0] if node.domain == HWGEN_DOMAIN else len(node.input)
        ins = [groups.get(t, 1) for t in node.input[:streams]]
        if node.op_type == "FrameMVU":
            unit = unit_of(model, node)
            if ins[0] > 1 and takes_groups(unit.channels, unit.SIMD, ins[0]):
                set_attr(node, input_groups=ins[0])
            elif ins[0] > 1:
                reorder(node, 0, 1, *frames[node.input[0]])
            groups[node.output[0]], frames[node.output[0]] = unit.NF, (unit.pixels, unit.MH)
        elif node.op_type in GROUPED_OPS and max(ins) > 1:
            unit, target = unit_of(model, node), max(ins)
            for index, have in enumerate(ins):
                if have != target:
                    reorder(node, index, target, unit.pixels, unit.channels)
            per_group = unit.channels // target
            set_attr(node, channel_groups=target, PE=math.gcd(unit.PE, per_group))
            groups[node.output[0]], frames[node.output[0]] = target, (unit.pixels, unit.channels)
        else:
            for index, have in enumerate(ins):
                if have > 1:
                    reorder(node, index, 1, *frames[node.input[index]])
    for output in model.graph.output:
        if groups.get(output.name, 1) > 1:  # the producer writes a new tensor, reordered into the output
            producer = model.find_producer(output.name)
            inner = model.make_new_valueinfo_name()
            model.set_tensor_datatype(inner, model.get_tensor_datatype(output.name))
            model.set_tensor_shape(inner, model.get_tensor_shape(output.name))
            producer.output[list(producer.output).index(output.name)] = inner
            model.graph.node.append(_reorder_node(model, inner, output.name, groups[output.name], 1,
                                                  *frames[output.name], f"Reorder_{output.name}_1"))


def _reorder_node(model: ModelWrapper, source: str, target: str, have: int, to: int, pixels: int, channels: int,
                  name: str):
    """A Reorder `name` of `source` (in `have` channel groups) into `target` (in `to`), its lanes
    the widest that divide a group of both orders."""
    return make_node("Reorder", [source], [target], domain=HWGEN_DOMAIN, name=name,
                     pixels=pixels, channels=channels, PE=math.gcd(channels // have, channels // to),
                     dtype=model.get_tensor_datatype(source).name, in_groups=have, out_groups=to)

"""InferConvolution.

    Conv(x: int NCHW, W) [-> MultiThreshold(T)]
      =>  SlidingWindow(x; kernel, stride, pads) -> MVU(W', T; vectors_per_frame = OH*OW)

The window generator emits, for each output pixel in raster order, the window's elements in
(kh, kw, c) order, so the weights become W' = W.transpose(kh, kw, c_in, c_out) reshaped to
(kh*kw*c_in, c_out). With padding, a padded element must be a real 0, as in PyTorch: where the
input datatype cannot hold 0 (BIPOLAR, ±1), the window widens it (BIPOLAR to TERNARY, {-1, 0, +1}
in two bits) and pads with 0, and the matrix-vector unit multiplies {-1, 0, +1} by its weights (two
popcounts where the weights are ±1). No border pixel is approximated.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from hwgen.errors import HwgenError
from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, add_const, const, insert_after, int_dtype_for_range, make_node, new_tensor, single_consumer
from hwgen.transforms.hardware.infer_mvu import fusable, threshold_output, threshold_rows
from hwgen.units.datapath import is_bipolar
from hwgen.units.mvu import accumulator_dtype


def _ints(node, name: str, default: list[int]) -> list[int]:
    a = get_by_name(node.attribute, name)
    return list(a.ints) if a is not None and len(a.ints) else default


def conv_geometry(model: ModelWrapper, conv) -> dict:
    """Kernel, stride and padding of a Conv, checked for what hardware supports."""
    w = const(model, conv.input[1])
    cout, cin, kh, kw = w.shape
    group = get_by_name(conv.attribute, "group")
    if group is not None and group.i != 1:
        raise HwgenError(f"grouped convolution (group={group.i}) is not supported", where=f"node {conv.name}")
    if any(d != 1 for d in _ints(conv, "dilations", [1, 1])):
        raise HwgenError(f"dilated convolution (dilations={_ints(conv, 'dilations', [])}) is not supported",
                         where=f"node {conv.name}")
    auto_pad = get_by_name(conv.attribute, "auto_pad")
    if auto_pad is not None and auto_pad.s not in (b"NOTSET", b""):
        raise HwgenError("auto_pad is not supported; give explicit pads", where=f"node {conv.name}")
    if len(conv.input) > 2 and conv.input[2]:
        raise HwgenError("Conv with a bias input is not supported here (streamlining folds biases)",
                         where=f"node {conv.name}")
    pads = _ints(conv, "pads", [0, 0, 0, 0])
    _, c, h, wd = model.get_tensor_shape(conv.input[0])
    return {"in_h": h, "in_w": wd, "channels": c, "kernel_h": kh, "kernel_w": kw,
            "stride_h": _ints(conv, "strides", [1, 1])[0], "stride_w": _ints(conv, "strides", [1, 1])[1],
            "pad_top": pads[0], "pad_left": pads[1], "pad_bottom": pads[2], "pad_right": pads[3]}


class InferConvolution(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for conv in model.graph.node:
            if conv.op_type != "Conv" or const(model, conv.input[1]) is None:
                continue
            mt = single_consumer(model, conv.output[0])
            matches.append((conv, mt if fusable(model, mt) else None))
        for conv, mt in matches:
            geo = conv_geometry(model, conv)
            w = np.rint(const(model, conv.input[1])).astype(np.int64)
            cout, cin, kh, kw = w.shape
            idt = model.get_tensor_datatype(conv.input[0])
            wdt = model.get_tensor_datatype(conv.input[1])
            padded = any(geo[k] for k in ("pad_top", "pad_left", "pad_bottom", "pad_right"))
            wdt_in = idt
            if padded and not idt.allowed(0):
                wdt_in = DataType["TERNARY"] if is_bipolar(idt) else int_dtype_for_range(min(0, idt.min()),
                                                                                        max(0, idt.max()))
            out_h = (geo["in_h"] + geo["pad_top"] + geo["pad_bottom"] - kh) // geo["stride_h"] + 1
            out_w = (geo["in_w"] + geo["pad_left"] + geo["pad_right"] - kw) // geo["stride_w"] + 1
            windows = new_tensor(model, shape=[model.get_tensor_shape(conv.input[0])[0],
                                               out_h * out_w * kh * kw * cin], dtype=wdt_in)
            swg = make_node("SlidingWindow", [conv.input[0]], [windows], domain=HWGEN_DOMAIN,
                            name=fresh_node_name(model, "SlidingWindow"), SIMD=1, input_dtype=idt.name,
                            output_dtype=wdt_in.name, pad_value=0 if wdt_in.allowed(0) else int(wdt_in.min()),
                            **geo)  # (the pad value only matters with padding, and is then 0)
            weights = w.transpose(2, 3, 1, 0).reshape(kh * kw * cin, cout)
            inputs = [windows, add_const(model, weights.astype(np.float32), wdt)]
            if mt is not None:
                odt, bias = threshold_output(model, mt)
                inputs.append(threshold_rows(model, mt, cout))
                out = mt.output[0]
            else:
                odt, bias = accumulator_dtype(wdt_in, wdt, weights), 0
                out = conv.output[0]
            mvu = make_node("MVU", inputs, [out], domain=HWGEN_DOMAIN, name=fresh_node_name(model, "ConvMVU"),
                            MW=kh * kw * cin, MH=cout, PE=1, SIMD=1, input_dtype=wdt_in.name,
                            weight_dtype=wdt.name, output_dtype=odt.name, out_bias=bias,
                            vectors_per_frame=out_h * out_w)
            insert_after(model, mt if mt is not None else conv, [swg, mvu])
            model.graph.node.remove(conv)
            if mt is not None:
                model.graph.node.remove(mt)
            model.set_tensor_datatype(out, odt)
        return model, bool(matches)

"""InferMaxPool.

    MaxPool(x: int NCHW; kernel k, stride k, no padding)    =>   MaxPool unit (channel-last stream)
    MaxPool(x: int NCHW; kernel k, stride s, padding p)     =>   SlidingWindow(k, s, p; pad = min) -> WindowMax

Windows that tile the image reduce in place, one row of accumulators (`MaxPool`). Windows that
overlap or reach into padding (the 3x3, stride 2, padding 1 pool of ResNet stems) come from a
window generator padding with the datatype's smallest value, as PyTorch pads with -inf.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from hwgen.errors import HwgenError
from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, insert_after, make_node, new_tensor


def _ints(node, name: str, default: list[int]) -> list[int]:
    a = get_by_name(node.attribute, name)
    return list(a.ints) if a is not None and len(a.ints) else default


class InferMaxPool(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node
                   if n.op_type == "MaxPool" and n.domain in ("", "ai.onnx")  # not the unit of the same name
                   and model.get_tensor_datatype(n.input[0]).is_integer()]
        for pool in matches:
            kernel = _ints(pool, "kernel_shape", [])
            strides = _ints(pool, "strides", [1, 1])
            pads = _ints(pool, "pads", [0, 0, 0, 0])
            ceil = get_by_name(pool.attribute, "ceil_mode")
            dilations = _ints(pool, "dilations", [1, 1])
            if len(kernel) != 2 or (ceil is not None and ceil.i) or any(d != 1 for d in dilations) \
                    or len(pool.output) > 1 and pool.output[1]:
                raise HwgenError(f"max pooling needs a 2-D kernel, no ceil_mode, dilation or indices output "
                                 f"(kernel {kernel}, strides {strides})", where=f"node {pool.name}")
            _, c, h, w = model.get_tensor_shape(pool.input[0])
            dtype = model.get_tensor_datatype(pool.input[0])
            if kernel[0] == kernel[1] and strides == kernel and not any(pads):
                nodes = [make_node("MaxPool", [pool.input[0]], [pool.output[0]], domain=HWGEN_DOMAIN,
                                   name=fresh_node_name(model, "MaxPool"), in_h=h, in_w=w, channels=c,
                                   kernel=kernel[0], PE=1, dtype=dtype.name)]
            else:
                out_h = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
                out_w = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
                windows = new_tensor(model, shape=[model.get_tensor_shape(pool.input[0])[0],
                                                   out_h * out_w * kernel[0] * kernel[1] * c], dtype=dtype)
                nodes = [
                    make_node("SlidingWindow", [pool.input[0]], [windows], domain=HWGEN_DOMAIN,
                              name=fresh_node_name(model, "SlidingWindow"), in_h=h, in_w=w, channels=c,
                              kernel_h=kernel[0], kernel_w=kernel[1], stride_h=strides[0], stride_w=strides[1],
                              pad_top=pads[0], pad_left=pads[1], pad_bottom=pads[2], pad_right=pads[3], SIMD=1,
                              input_dtype=dtype.name, output_dtype=dtype.name, pad_value=int(dtype.min())),
                    make_node("WindowMax", [windows], [pool.output[0]], domain=HWGEN_DOMAIN,
                              name=fresh_node_name(model, "WindowMax"), channels=c, SIMD=1,
                              positions=kernel[0] * kernel[1], out_pixels=out_h * out_w, dtype=dtype.name),
                ]
            insert_after(model, pool, nodes)
            model.graph.node.remove(pool)
        return model, bool(matches)

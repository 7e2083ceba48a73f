"""InferMaxPool.

    MaxPool(x: int NCHW; kernel k, stride k, no padding)   =>   MaxPool unit (channel-last stream)
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from hwgen.errors import HwgenError
from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, insert_after, make_node


class InferMaxPool(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node
                   if n.op_type == "MaxPool" and n.domain in ("", "ai.onnx")  # not the unit of the same name
                   and model.get_tensor_datatype(n.input[0]).is_integer()]
        for pool in matches:
            kernel = list(get_by_name(pool.attribute, "kernel_shape").ints)
            strides = get_by_name(pool.attribute, "strides")
            strides = list(strides.ints) if strides is not None else [1, 1]
            pads = get_by_name(pool.attribute, "pads")
            ceil = get_by_name(pool.attribute, "ceil_mode")
            if kernel[0] != kernel[1] or strides != kernel or (pads is not None and any(pads.ints)) \
                    or (ceil is not None and ceil.i):
                raise HwgenError(f"max pooling needs a square kernel equal to its stride, no padding "
                                 f"(kernel {kernel}, strides {strides})", where=f"node {pool.name}")
            _, c, h, w = model.get_tensor_shape(pool.input[0])
            node = make_node("MaxPool", [pool.input[0]], [pool.output[0]], domain=HWGEN_DOMAIN,
                             name=fresh_node_name(model, "MaxPool"), in_h=h, in_w=w, channels=c, kernel=kernel[0],
                             PE=1, dtype=model.get_tensor_datatype(pool.input[0]).name)
            insert_after(model, pool, [node])
            model.graph.node.remove(pool)
        return model, bool(matches)

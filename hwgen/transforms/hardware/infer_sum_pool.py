"""InferSumPool.

    SumPool(x: int NCHW; kernel)     =>     SumPool unit (channel-last stream; kernel 0 x 0 = global)
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.ops.integer import DOMAIN as INTEGER_DOMAIN
from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, insert_after, make_node


class InferSumPool(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node if n.op_type == "SumPool" and n.domain == INTEGER_DOMAIN]
        for pool in matches:
            kh, kw = getCustomOp(pool).get_nodeattr("kernel")
            _, c, h, w = model.get_tensor_shape(pool.input[0])
            node = make_node("SumPool", list(pool.input), list(pool.output), domain=HWGEN_DOMAIN,
                             name=fresh_node_name(model, "SumPool"), in_h=h, in_w=w, channels=c, PE=1,
                             input_dtype=model.get_tensor_datatype(pool.input[0]).name, kernel_h=kh, kernel_w=kw)
            insert_after(model, pool, [node])
            model.graph.node.remove(pool)
        return model, bool(matches)

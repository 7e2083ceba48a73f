"""InferAddStreams.

    ScaledAdd(a: int, b: int; alpha, beta)     =>     AddStreams(a, b; alpha, beta)
    ScaledAdd(a, b; alphas, betas)             =>     AddStreams(a, b; alphas, betas)      per channel
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.ops.integer import DOMAIN as INTEGER_DOMAIN
from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, insert_after, make_node
from hwgen.transforms.hardware.geometry import channels_and_pixels


def per_channel(op) -> dict[str, list[int]]:
    """The ScaledAdd's coefficients per channel, as AddStreams attributes (none where they are
    the same in every channel: an empty list has no ONNX type)."""
    alphas, betas = list(op.get_nodeattr("alphas")), list(op.get_nodeattr("betas"))
    return {"alphas": alphas, "betas": betas} if alphas else {}


class InferAddStreams(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node if n.op_type == "ScaledAdd" and n.domain == INTEGER_DOMAIN]
        for add in matches:
            op = getCustomOp(add)
            channels, pixels = channels_and_pixels(model, add.output[0])
            node = make_node("AddStreams", list(add.input), list(add.output), domain=HWGEN_DOMAIN,
                             name=fresh_node_name(model, "AddStreams"), channels=channels, PE=1, pixels=pixels,
                             a_dtype=model.get_tensor_datatype(add.input[0]).name,
                             b_dtype=model.get_tensor_datatype(add.input[1]).name,
                             alpha=op.get_nodeattr("alpha"), beta=op.get_nodeattr("beta"),
                             output_dtype=op.get_nodeattr("out_dtype"), **per_channel(op))
            insert_after(model, add, [node])
            model.graph.node.remove(add)
        return model, bool(matches)

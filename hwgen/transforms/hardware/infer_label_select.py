"""InferLabelSelect.

    TopK(acc: int, k) -> indices  |  ArgMax(acc: int)    =>    LabelSelect(acc; k)

Only where `AbsorbMonotonicChainIntoTopK` left the top-k right on an integer accumulator.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, const, insert_after, make_node


class InferLabelSelect(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node
                   if n.op_type in ("TopK", "ArgMax") and model.get_tensor_datatype(n.input[0]).is_integer()]
        for node in matches:
            k = int(const(model, node.input[1]).reshape(-1)[0]) if node.op_type == "TopK" else 1
            labels = model.get_tensor_shape(node.input[0])[1]
            out = node.output[1] if node.op_type == "TopK" else node.output[0]
            new = make_node("LabelSelect", [node.input[0]], [out], domain=HWGEN_DOMAIN,
                            name=fresh_node_name(model, "LabelSelect"), labels=labels, PE=1, k=k,
                            input_dtype=model.get_tensor_datatype(node.input[0]).name)
            insert_after(model, node, [new])
            model.graph.node.remove(node)
        return model, bool(matches)

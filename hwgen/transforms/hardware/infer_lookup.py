"""InferLookup.

    Lookup(x: int, table; in_min)     =>     ChannelwiseLookup(x; table over x's whole datatype)

The unit indexes its table by every value of the input datatype; entries below `in_min` or past
the table's end (values the input never takes) repeat the nearest entry.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.ops.integer import DOMAIN as INTEGER_DOMAIN
from hwgen.transforms.graph import HWGEN_DOMAIN, add_const, const, fresh_node_name, insert_after, make_node
from hwgen.transforms.hardware.geometry import channels_and_pixels


class InferLookup(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node if n.op_type == "Lookup" and n.domain == INTEGER_DOMAIN]
        for lookup in matches:
            op = getCustomOp(lookup)
            idt = model.get_tensor_datatype(lookup.input[0])
            table = np.rint(const(model, lookup.input[1])).astype(np.int64)
            values = np.arange(int(idt.min()), int(idt.max()) + 1) - op.get_nodeattr("in_min")
            full = table[:, np.clip(values, 0, table.shape[1] - 1)]
            channels, pixels = channels_and_pixels(model, lookup.output[0])
            node = make_node("ChannelwiseLookup", [lookup.input[0], add_const(model, full.astype(np.float32))],
                             list(lookup.output), domain=HWGEN_DOMAIN, name=fresh_node_name(model, "ChannelwiseLookup"),
                             channels=channels, PE=1, pixels=pixels, input_dtype=idt.name,
                             output_dtype=op.get_nodeattr("out_dtype"))
            insert_after(model, lookup, [node])
            model.graph.node.remove(lookup)
        return model, bool(matches)

"""InferConcatStreams.

    Concat(x0: int, x1: int, ...; axis=1)     =>     ConcatStreams(x0, x1, ...)

A channel concatenation of integer tensors; other axes have no stream form and are refused by name.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from hwgen.errors import HwgenError
from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, insert_after, make_node
from hwgen.transforms.hardware.geometry import channels_and_pixels
from hwgen.units.concat_streams import concat_dtype


class InferConcatStreams(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node if n.op_type == "Concat" and n.domain in ("", "ai.onnx")]
        for concat in matches:
            rank = len(model.get_tensor_shape(concat.output[0]))
            axis = get_by_name(concat.attribute, "axis").i % rank
            if axis != 1:
                raise HwgenError(f"only a channel concatenation (axis 1) has a stream form, not axis {axis}",
                                 where=f"node {concat.name}")
            dtypes = [model.get_tensor_datatype(t) for t in concat.input]
            channels = [channels_and_pixels(model, t)[0] for t in concat.input]
            _, pixels = channels_and_pixels(model, concat.output[0])
            odt = concat_dtype(tuple(dtypes))
            node = make_node("ConcatStreams", list(concat.input), list(concat.output), domain=HWGEN_DOMAIN,
                             name=fresh_node_name(model, "ConcatStreams"), channels=channels, PE=1, pixels=pixels,
                             input_dtypes=[d.name for d in dtypes], output_dtype=odt.name)
            insert_after(model, concat, [node])
            model.graph.node.remove(concat)
            model.set_tensor_datatype(concat.output[0], odt)
        return model, bool(matches)

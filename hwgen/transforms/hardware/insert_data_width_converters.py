"""InsertDataWidthConverters.

    A(out: PE=4) -> B(in: SIMD=8)    =>   A -> DataWidthConverter(4 -> 8) -> B

on every stream edge, whatever port of A writes it and whatever port of B reads it.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, make_node, new_tensor
from hwgen.transforms.hardware.streams import stream_edges


class InsertDataWidthConverters(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for edge in stream_edges(model):
            if edge.producer is None:
                continue
            out_spec = edge.producer.spec(model, output=True)
            for reader in edge.readers:
                in_spec = reader.spec(model, output=False)
                if out_spec.elems_per_beat == in_spec.elems_per_beat:
                    continue
                converted = new_tensor(model, edge.tensor, dtype=model.get_tensor_datatype(edge.tensor))
                node = make_node("DataWidthConverter", [edge.tensor], [converted], domain=HWGEN_DOMAIN,
                                 name=fresh_node_name(model, "DataWidthConverter"), dtype=out_spec.dtype.name,
                                 in_elems=out_spec.elems_per_beat, out_elems=in_spec.elems_per_beat,
                                 elems_per_frame=out_spec.elems_per_frame)
                reader.node.input[reader.index] = converted
                model.graph.node.insert(list(model.graph.node).index(reader.node), node)
                changed = True
        return model, changed

"""InsertDuplicateStreams.

    A -> t -> B, t -> C          =>     A -> t -> DuplicateStreams -> t0 -> B, t1 -> C

A stream has exactly one reader (its ready signal has one driver); a tensor that several units
read, or that a unit reads and the host also takes as the accelerator output, is fanned out
through an explicit DuplicateStreams unit.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, make_node, new_tensor
from hwgen.transforms.hardware.streams import stream_edges


class InsertDuplicateStreams(Transformation):
    def apply(self, model: ModelWrapper):
        for edge in stream_edges(model):
            readers = len(edge.readers) + int(edge.is_output)
            if readers < 2:
                continue
            spec = edge.spec(model)
            dtype = model.get_tensor_datatype(edge.tensor)
            source = edge.tensor
            if edge.is_output:  # the graph output keeps its name: it becomes the last copy
                source = new_tensor(model, edge.tensor, dtype=dtype)
                edge.producer.node.output[edge.producer.index] = source
            copies = [new_tensor(model, edge.tensor, dtype=dtype) for _ in edge.readers]
            if edge.is_output:
                copies.append(edge.tensor)
            for reader, copy in zip(edge.readers, copies):
                reader.node.input[reader.index] = copy
            node = make_node("DuplicateStreams", [source], copies, domain=HWGEN_DOMAIN,
                             name=fresh_node_name(model, "DuplicateStreams"), dtype=spec.dtype.name,
                             elems_per_beat=spec.elems_per_beat, beats_per_frame=spec.beats_per_frame,
                             copies=len(copies))
            first_reader = min(list(model.graph.node).index(r.node) for r in edge.readers) if edge.readers \
                else len(model.graph.node)
            model.graph.node.insert(first_reader, node)
            return model, True
        return model, False

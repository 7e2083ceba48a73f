"""InsertFifos.

    A -> B          =>   A -> StreamingFifo(depth) -> B
    in -> A         =>   in -> StreamingFifo -> A            (the accelerator's input and output too)

Every stream edge gets its own FIFO, so no unit's ready signal reaches another unit's (or a
top-level port) combinationally, and each edge's buffering can be sized on its own
(`SizeFifos`, or a hand depth in the folding file). An edge that already has a FIFO is left alone.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, make_node, new_tensor
from hwgen.transforms.hardware.streams import stream_edges

FIFO = "StreamingFifo"


class InsertFifos(Transformation):
    def __init__(self, depth: int = 2) -> None:
        super().__init__()
        self.depth = depth

    def apply(self, model: ModelWrapper):
        changed = False
        for edge in stream_edges(model):
            spec = edge.spec(model)
            dtype = model.get_tensor_datatype(edge.tensor)
            has_fifo = (edge.producer is not None and edge.producer.node.op_type == FIFO) or \
                any(r.node.op_type == FIFO for r in edge.readers)
            if has_fifo:
                continue
            attrs = dict(domain=HWGEN_DOMAIN, name=fresh_node_name(model, FIFO), dtype=spec.dtype.name,
                         elems_per_beat=spec.elems_per_beat, beats_per_frame=spec.beats_per_frame,
                         depth=self.depth)
            if edge.readers:
                (reader,) = edge.readers  # after InsertDuplicateStreams every stream has one reader
                fifo_out = new_tensor(model, edge.tensor, dtype=dtype)
                reader.node.input[reader.index] = fifo_out
                node = make_node(FIFO, [edge.tensor], [fifo_out], **attrs)
                model.graph.node.insert(list(model.graph.node).index(reader.node), node)
            else:  # the output edge: the FIFO takes over the graph output name
                fifo_in = new_tensor(model, edge.tensor, dtype=dtype)
                edge.producer.node.output[edge.producer.index] = fifo_in
                model.graph.node.append(make_node(FIFO, [fifo_in], [edge.tensor], **attrs))
            changed = True
        return model, changed

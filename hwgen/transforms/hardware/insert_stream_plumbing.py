"""InsertDataWidthConverters and InsertFifos: make every edge a plain, decoupled stream.

    A(out: PE=4) -> B(in: SIMD=8)    =>   A -> DataWidthConverter(4 -> 8) -> B
    A -> B                           =>   A -> StreamingFifo(depth) -> B

FIFOs also sit on the accelerator's input and output, so no unit's ready signal reaches a
top-level port combinationally.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.ops import unit_of
from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, make_node, new_tensor


def _edges(model: ModelWrapper):
    """(tensor, producer or None, consumer or None) for every stream edge."""
    edges = []
    graph_in, graph_out = model.graph.input[0].name, model.graph.output[0].name
    for node in model.graph.node:
        t = node.input[0]
        producer = model.find_producer(t)
        edges.append((t, producer, node))
    last = model.find_producer(graph_out)
    edges.append((graph_out, last, None))
    return [e for e in edges if e[1] is not None or e[0] == graph_in]


class InsertDataWidthConverters(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for t, producer, consumer in _edges(model):
            if producer is None or consumer is None:
                continue
            out_spec = unit_of(model, producer).outputs[0]
            in_spec = unit_of(model, consumer).inputs[0]
            if out_spec.elems_per_beat != in_spec.elems_per_beat:
                matches.append((t, consumer, out_spec, in_spec))
        for t, consumer, out_spec, in_spec in matches:
            converted = new_tensor(model, t, dtype=model.get_tensor_datatype(t))
            node = make_node("DataWidthConverter", [t], [converted], domain=HWGEN_DOMAIN,
                             name=fresh_node_name(model, "DataWidthConverter"), dtype=out_spec.dtype.name,
                             in_elems=out_spec.elems_per_beat, out_elems=in_spec.elems_per_beat,
                             elems_per_frame=out_spec.elems_per_frame)
            consumer.input[0] = converted
            model.graph.node.insert(list(model.graph.node).index(consumer), node)
        return model, bool(matches)


class InsertFifos(Transformation):
    def __init__(self, depth: int = 2) -> None:
        super().__init__()
        self.depth = depth

    def apply(self, model: ModelWrapper):
        graph_out = model.graph.output[0].name
        fifo = "StreamingFifo"
        edges = [(t, p, c) for t, p, c in _edges(model)
                 if (p is None or p.op_type != fifo) and (c is None or c.op_type != fifo)]
        for t, producer, consumer in edges:
            spec = unit_of(model, consumer).inputs[0] if consumer is not None else unit_of(model, producer).outputs[0]
            fifo_out = new_tensor(model, t, dtype=model.get_tensor_datatype(t))
            node = make_node("StreamingFifo", [t], [fifo_out], domain=HWGEN_DOMAIN,
                             name=fresh_node_name(model, fifo), dtype=spec.dtype.name,
                             elems_per_beat=spec.elems_per_beat, beats_per_frame=spec.beats_per_frame,
                             depth=self.depth)
            if consumer is not None:
                consumer.input[0] = fifo_out
                model.graph.node.insert(list(model.graph.node).index(consumer), node)
            else:  # the output edge: the FIFO takes over the graph output name
                producer.output[0] = fifo_out
                node.input[0], node.output[0] = fifo_out, graph_out
                fifo_in = node.input[0]
                model.graph.node.append(node)
                model.set_tensor_datatype(fifo_in, model.get_tensor_datatype(graph_out))
        return model, bool(edges)

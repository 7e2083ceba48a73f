"""The stream edges of a graph of hardware nodes: who writes each stream tensor, on which output
port, and who reads it, on which input port. Plumbing works edge by edge from this list."""

from __future__ import annotations

from dataclasses import dataclass, field

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hwgen.ops import unit_of
from hwgen.units.base import StreamSpec


@dataclass
class Port:
    node: object  # NodeProto
    index: int  # stream port index on that node

    def spec(self, model: ModelWrapper, output: bool) -> StreamSpec:
        unit = unit_of(model, self.node)
        return (unit.outputs if output else unit.inputs)[self.index]


@dataclass
class StreamEdge:
    tensor: str
    producer: Port | None  # None: the accelerator input
    readers: list[Port] = field(default_factory=list)
    is_output: bool = False  # also the accelerator output (read by the host)

    def spec(self, model: ModelWrapper) -> StreamSpec:
        if self.producer is not None:
            return self.producer.spec(model, output=True)
        return self.readers[0].spec(model, output=False)


def stream_inputs(node) -> list[str]:
    return getCustomOp(node).stream_inputs()


def stream_edges(model: ModelWrapper) -> list[StreamEdge]:
    """Every stream tensor of the graph, in graph order, with its producer and readers."""
    edges: dict[str, StreamEdge] = {}
    graph_in, graph_out = model.graph.input[0].name, model.graph.output[0].name
    edges[graph_in] = StreamEdge(graph_in, None)
    for node in model.graph.node:
        for index, tensor in enumerate(stream_inputs(node)):
            edges.setdefault(tensor, StreamEdge(tensor, None)).readers.append(Port(node, index))
        n_out = getCustomOp(node).stream_counts()[1]
        for index, tensor in enumerate(node.output[:n_out]):
            edges.setdefault(tensor, StreamEdge(tensor, None)).producer = Port(node, index)
    if graph_out in edges:
        edges[graph_out].is_output = True
    return list(edges.values())

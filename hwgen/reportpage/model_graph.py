"""Any ONNX graph of the lowering (a checkpoint, or a model between two rewrites) as a picture.

The report page draws the plumbed accelerator; watching the streamlining happen needs the graphs
before it, whose nodes are ONNX/QONNX ops. Each box is an op with its name and what it outputs
(QONNX datatype and shape); the layout and drawing are the report page's (`graph.draw`).
`GraphPicture(model)` shows itself in a notebook cell.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from qonnx.core.modelwrapper import ModelWrapper

from hwgen.ops import COMPUTE_OPS, PLUMBING_OPS
from hwgen.reportpage.graph import GRAPH_STYLE, GraphEdge, GraphNode, draw


def _tensor_note(model: ModelWrapper, tensor: str) -> str:
    """`INT8 [1, 16, 8, 8]`: the tensor's QONNX datatype and shape, as far as they are known."""
    try:
        dtype = model.get_tensor_datatype(tensor).name
    except Exception:  # a tensor without value_info has no annotation to read
        dtype = "?"
    shape = model.get_tensor_shape(tensor)
    return f"{dtype} {list(shape) if shape is not None else '?'}"


def model_graph(model: ModelWrapper) -> tuple[list[GraphNode], list[GraphEdge]]:
    """Boxes for the graph's inputs, its nodes (in graph order) and its outputs; an edge for every
    tensor from the node (or input) that makes it to each node (or output) that reads it.
    Initializers (weights, thresholds) are parameters of their node, not boxes."""
    graph = model.graph
    nodes: list[GraphNode] = []
    producer: dict[str, int] = {}
    for tensor in graph.input:
        producer[tensor.name] = len(nodes)
        nodes.append(GraphNode(tensor.name, ["input", tensor.name, _tensor_note(model, tensor.name)], "port"))
    for node in graph.node:
        kind = "compute" if node.op_type in COMPUTE_OPS else "plumbing" if node.op_type in PLUMBING_OPS else "fifo"
        out = _tensor_note(model, node.output[0]) if node.output else ""
        tooltip = "\n".join([f"{node.op_type} {node.name}", *(f"in: {t}" for t in node.input),
                             *(f"out: {t}" for t in node.output)])
        for tensor in node.output:
            producer[tensor] = len(nodes)
        nodes.append(GraphNode(node.name, [node.op_type, node.name, out], kind, tooltip))
    edges = []
    for index, node in enumerate(graph.node, start=len(graph.input)):
        for tensor in node.input:
            if tensor in producer:
                edges.append(GraphEdge(producer[tensor], index, "", tensor))
    for tensor in graph.output:
        nodes.append(GraphNode(tensor.name, ["output", tensor.name, _tensor_note(model, tensor.name)], "port"))
        if tensor.name in producer:
            edges.append(GraphEdge(producer[tensor.name], len(nodes) - 1, "", tensor.name))
    return nodes, edges


def model_svg(model: ModelWrapper, title: str = "") -> ET.Element:
    """The `<svg>` of `model_graph(model)`: hardware units blue, plumbing yellow, other ops grey."""
    nodes, edges = model_graph(model)
    return draw(nodes, edges, title or f"{len(model.graph.node)} nodes", "model-graph")


class GraphPicture:
    """A graph that Jupyter draws inline (`_repr_html_`: the SVG with its style)."""

    def __init__(self, model: ModelWrapper, title: str = "") -> None:
        self.svg = model_svg(model, title)

    def _repr_html_(self) -> str:
        return f"<style>{GRAPH_STYLE}</style>" + ET.tostring(self.svg, encoding="unicode", method="html")

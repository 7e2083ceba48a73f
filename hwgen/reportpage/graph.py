"""The plumbed dataflow graph of a build as a picture: a layered layout computed here, drawn as SVG.

Every node of the last checkpoint (units, FIFOs, width converters, duplicators) is a box with its
op, folding and estimates; every stream is an arrow labelled with its beat (elements x datatype =
bits). The layout is the usual layered one, top to bottom: a node's layer is the longest path to
it from the input, an edge that skips layers runs through a chain of invisible points (one per
layer it crosses) so that it bends around the boxes between, and a few sweeps of the barycentre
heuristic order each layer to keep edges from crossing. A chain of hundreds of units is a single
column that the page scrolls; nothing here depends on a layout tool being installed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from hwgen.ops import PLUMBING_OPS

NODE_H = 58  # three lines of text
LAYER_GAP = 46  # vertical room between layers, for the arrows and their labels
NODE_GAP = 28  # horizontal room between boxes of a layer
DUMMY_W = 16  # the slot an edge passing through a layer takes
CHAR_W = 7.0  # width of one character at the 12 px monospace the boxes use
MARGIN = 16

#: how the picture looks (class names of `draw`), for a page or a notebook cell
GRAPH_STYLE = """
svg.graph text { font: 12px monospace; text-anchor: middle; fill: #222; }
svg.graph text.name { font-weight: bold; }
svg.graph .edge path { fill: none; stroke: #666; stroke-width: 1.2; }
svg.graph .edge text { font: 10px monospace; text-anchor: start; fill: #555; }
svg.graph .arrow-head { fill: #666; }
svg.graph .node rect { stroke: #333; stroke-width: 1; }
svg.graph .compute rect { fill: #dce7f3; } svg.graph .fifo rect { fill: #eeeeee; }
svg.graph .plumbing rect { fill: #fbf1d5; } svg.graph .port rect { fill: #e3f1df; }
svg.graph .bottleneck rect { stroke: #d62728; stroke-width: 3; }
"""


@dataclass
class GraphNode:
    """A box: `lines` of text, `kind` for its colour (compute, fifo, plumbing, port)."""

    name: str
    lines: list[str]
    kind: str
    tooltip: str = ""
    bottleneck: bool = False
    width: float = 0.0
    x: float = 0.0  # centre
    y: float = 0.0  # top


@dataclass
class GraphEdge:
    """A stream from node index `src` to `dst`, its label (the beat) and the points it runs through."""

    src: int
    dst: int
    label: str
    tooltip: str = ""
    points: list[tuple[float, float]] = field(default_factory=list)


def stream_specs(build_dir: Path) -> dict[str, object]:
    """Each stream tensor of the last checkpoint by name: the `StreamSpec` its producer writes (its
    reader's for the graph input). Empty when the build has no checkpoint of hardware nodes."""
    from hwgen.host import load_build_graph
    from hwgen.ops import unit_of

    checkpoints = sorted((build_dir / "graphs").glob("*.onnx"))
    if not checkpoints:
        return {}
    model = load_build_graph(checkpoints[-1])
    specs: dict[str, object] = {}
    for node in model.graph.node:
        if node.domain != "hwgen.ops":
            return {}  # not a graph of hardware units (yet)
        unit = unit_of(model, node)
        for tensor, spec in zip(node.output, unit.outputs):
            specs[tensor] = spec
        for tensor, spec in zip(node.input, unit.inputs):
            specs.setdefault(tensor, spec)
    return specs


def beat_label(spec) -> str:
    return f"{spec.elems_per_beat}\u00d7{spec.dtype.name} = {spec.width} b"


def node_lines(layer: dict, specs_in: list, specs_out: list) -> list[str]:
    """Name; op and folding (or depth, or widths for a converter); the estimates."""
    knobs = [f"{key} {layer[key]}" for key in ("PE", "SIMD", "MMV") if layer.get(key) is not None]
    if layer.get("depth") is not None:
        knobs.append(f"depth {layer['depth']}")
    if layer["op"] == "DataWidthConverter" and specs_in and specs_out:
        knobs.append(f"{specs_in[0].width} b \u2192 {specs_out[0].width} b")
    second = " \u00b7 ".join([layer["op"], *knobs])
    third = f"{layer['est_cycles']:,} cycles \u00b7 {layer['est_luts']:,} LUT"
    if layer.get("est_brams"):
        third += f" \u00b7 {layer['est_brams']} BRAM18"
    if layer.get("est_dsps"):
        third += f" \u00b7 {layer['est_dsps']} DSP"
    return [layer["name"], second, third]


def dataflow_graph(report: dict, accelerator: dict, specs: dict[str, object]) -> tuple[list[GraphNode], list[GraphEdge]]:
    """Nodes (the accelerator's input, every layer of `report.json` in graph order, its output)
    and edges (`accelerator.json` `streams`), labelled from `specs`."""
    layers = report["layers"]
    bottleneck = report.get("target", {}).get("limited_by")
    index = {layer["name"]: i + 1 for i, layer in enumerate(layers)}
    streams = accelerator.get("streams") or []
    by_consumer: dict[str, list] = {}
    by_producer: dict[str, list] = {}
    for s in streams:
        spec = specs.get(s.get("tensor"))
        by_consumer.setdefault(s.get("consumer"), []).append(spec)
        by_producer.setdefault(s.get("producer"), []).append(spec)

    def port(name: str, info: dict | None) -> GraphNode:
        beat = (f"{info['elems_per_beat']}\u00d7{info['dtype']} = {info['width']} b, "
                f"{info['beats_per_frame']} beats/frame") if info else ""
        return GraphNode(name, [name, beat], "port")

    nodes = [port("input", accelerator.get("input"))]
    for layer in layers:
        ins = [s for s in by_consumer.get(layer["name"], []) if s is not None]
        outs = [s for s in by_producer.get(layer["name"], []) if s is not None]
        kind = ("fifo" if layer["op"] == "StreamingFifo" else
                "plumbing" if layer["op"] in PLUMBING_OPS else "compute")
        tooltip = "\n".join(f"{key}: {value}" for key, value in layer.items()
                            if value is not None and not isinstance(value, dict))
        lines = node_lines(layer, ins, outs)
        if layer["name"] == bottleneck:
            lines[0] += " \u2014 bottleneck"
        nodes.append(GraphNode(layer["name"], lines, kind, tooltip, bottleneck=layer["name"] == bottleneck))
    nodes.append(port("output", accelerator.get("output")))
    output = len(nodes) - 1

    edges = []
    for s in streams:
        src = index.get(s.get("producer"), 0) if s.get("producer") is not None else 0
        dst = index.get(s.get("consumer"), output) if s.get("consumer") is not None else output
        spec = specs.get(s.get("tensor"))
        label = beat_label(spec) if spec is not None else ""
        edges.append(GraphEdge(src, dst, label, f"{s.get('name')}: tensor {s.get('tensor')}"
                                                + (f", {spec.beats_per_frame} beats/frame" if spec else "")))
    return nodes, edges


def _layers(count: int, edges: list[tuple[int, int]]) -> list[int]:
    """Each node's layer: the longest path to it (Kahn's order, ties by index: deterministic)."""
    preds: list[list[int]] = [[] for _ in range(count)]
    succs: list[list[int]] = [[] for _ in range(count)]
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    remaining = [len(p) for p in preds]
    ready = [v for v in range(count) if remaining[v] == 0]
    layer = [0] * count
    seen = 0
    while ready:
        v = min(ready)
        ready.remove(v)
        seen += 1
        for w in succs[v]:
            layer[w] = max(layer[w], layer[v] + 1)
            remaining[w] -= 1
            if remaining[w] == 0:
                ready.append(w)
    if seen < count:  # a cycle (not a valid build): put what is left in graph order below
        bottom = max(layer) + 1
        for v in range(count):
            if remaining[v] > 0:
                layer[v] = bottom
                bottom += 1
    return layer


def layout(nodes: list[GraphNode], edges: list[GraphEdge]) -> tuple[float, float]:
    """Place `nodes` (x, y, width) and route `edges` (points); returns the picture's size."""
    for node in nodes:
        node.width = max(120.0, CHAR_W * max(len(line) for line in node.lines) + 20)
    layer = _layers(len(nodes), [(e.src, e.dst) for e in edges])
    # an edge over several layers gets a point in each layer between (ids after the nodes)
    widths = [n.width for n in nodes]
    chains = []
    for e in edges:
        chain = [e.src]
        for level in range(layer[e.src] + 1, layer[e.dst]):
            layer.append(level)
            widths.append(DUMMY_W)
            chain.append(len(layer) - 1)
        chains.append(chain + [e.dst])
    rows: list[list[int]] = [[] for _ in range(max(layer) + 1)]
    for v, level in enumerate(layer):
        rows[level].append(v)
    up: dict[int, list[int]] = {}
    down: dict[int, list[int]] = {}
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    position = {v: i for row in rows for i, v in enumerate(row)}
    for sweep in range(8):  # barycentre ordering, alternately from above and from below
        neighbours = up if sweep % 2 == 0 else down
        order = range(1, len(rows)) if sweep % 2 == 0 else range(len(rows) - 2, -1, -1)
        for level in order:
            def key(v: int) -> float:
                near = neighbours.get(v)
                return sum(position[u] for u in near) / len(near) if near else position[v]
            rows[level].sort(key=key)  # stable: ties keep their order
            for i, v in enumerate(rows[level]):
                position[v] = i
    row_width = [sum(widths[v] for v in row) + NODE_GAP * (len(row) - 1) for row in rows]
    total_w = max(row_width) + 2 * MARGIN
    centre: dict[int, tuple[float, float]] = {}
    for level, row in enumerate(rows):
        x = (total_w - row_width[level]) / 2
        y = MARGIN + level * (NODE_H + LAYER_GAP)
        for v in row:
            centre[v] = (x + widths[v] / 2, y)
            x += widths[v] + NODE_GAP
    _straighten([chain[1:-1] for chain in chains if len(chain) > 2], rows, centre, widths)
    for v, node in enumerate(nodes):
        node.x, node.y = centre[v]
    for e, chain in zip(edges, chains):
        start = (centre[chain[0]][0], centre[chain[0]][1] + NODE_H)
        middle = [(centre[v][0], centre[v][1] + NODE_H / 2) for v in chain[1:-1]]
        e.points = [start, *middle, centre[chain[-1]]]
    return total_w, MARGIN * 2 + len(rows) * (NODE_H + LAYER_GAP) - LAYER_GAP


def _straighten(runs: list[list[int]], rows: list[list[int]], centre: dict[int, tuple[float, float]],
                widths: list[float]) -> None:
    """Give the points of each edge that skips layers one x where that overlaps no box (rows are
    centred one by one, so their points would zigzag): the x that moves them least and fits."""
    where = {v: (level, i) for level, row in enumerate(rows) for i, v in enumerate(row)}

    def fits(v: int, x: float) -> bool:
        level, i = where[v]
        row = rows[level]
        left = row[i - 1] if i > 0 else None
        right = row[i + 1] if i + 1 < len(row) else None
        return ((left is None or centre[left][0] + widths[left] / 2 + NODE_GAP / 2 <= x - DUMMY_W / 2) and
                (right is None or centre[right][0] - widths[right] / 2 - NODE_GAP / 2 >= x + DUMMY_W / 2))

    for run in runs:
        xs = sorted({centre[v][0] for v in run})
        for x in sorted(xs, key=lambda c: sum(abs(centre[v][0] - c) for v in run)):
            if all(fits(v, x) for v in run):
                for v in run:
                    centre[v] = (x, centre[v][1])
                break


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _path(points: list[tuple[float, float]]) -> str:
    """Smooth vertical S-curves from point to point."""
    (x0, y0), rest = points[0], points[1:]
    d = [f"M {_fmt(x0)} {_fmt(y0)}"]
    for x1, y1 in rest:
        mid = (y0 + y1) / 2
        d.append(f"C {_fmt(x0)} {_fmt(mid)} {_fmt(x1)} {_fmt(mid)} {_fmt(x1)} {_fmt(y1)}")
        x0, y0 = x1, y1
    return " ".join(d)


def graph_svg(report: dict, accelerator: dict, specs: dict[str, object]) -> ET.Element:
    """The inline `<svg>` of the dataflow graph (no namespace: it lives in an HTML page)."""
    nodes, edges = dataflow_graph(report, accelerator, specs)
    return draw(nodes, edges, f"Dataflow graph: {len(nodes) - 2} nodes, {len(edges)} streams", "dataflow-graph")


def draw(nodes: list[GraphNode], edges: list[GraphEdge], title: str, figure: str) -> ET.Element:
    """`nodes` and `edges` laid out (`layout`) and drawn as an `<svg>` of class `graph` (styled by
    `GRAPH_STYLE`), marked `data-figure=figure` for the page's rendering check."""
    width, height = layout(nodes, edges)
    svg = ET.Element("svg", {"width": _fmt(width), "height": _fmt(height), "viewBox": f"0 0 {_fmt(width)} {_fmt(height)}",
                             "class": "graph", "role": "img", "data-figure": figure})
    ET.SubElement(svg, "title").text = title
    marker = ET.SubElement(ET.SubElement(svg, "defs"), "marker", {
        "id": "graph-arrow", "viewBox": "0 0 10 10", "refX": "10", "refY": "5", "markerWidth": "7",
        "markerHeight": "7", "orient": "auto-start-reverse"})
    ET.SubElement(marker, "path", {"d": "M 0 0 L 10 5 L 0 10 z", "class": "arrow-head"})
    group = ET.SubElement(svg, "g", {"class": "edges"})
    for e in edges:
        g = ET.SubElement(group, "g", {"class": "edge"})
        ET.SubElement(g, "title").text = e.tooltip
        ET.SubElement(g, "path", {"d": _path(e.points), "marker-end": "url(#graph-arrow)"})
        if e.label:
            (x0, y0), (x1, y1) = e.points[0], e.points[1]
            ET.SubElement(g, "text", {"x": _fmt((x0 + x1) / 2 + 6), "y": _fmt((y0 + y1) / 2 + 4)}).text = e.label
    group = ET.SubElement(svg, "g", {"class": "nodes"})
    for node in nodes:
        classes = f"node {node.kind}" + (" bottleneck" if node.bottleneck else "")
        g = ET.SubElement(group, "g", {"class": classes, "data-name": node.name})
        ET.SubElement(g, "title").text = node.tooltip or node.name
        left = node.x - node.width / 2
        ET.SubElement(g, "rect", {"x": _fmt(left), "y": _fmt(node.y), "width": _fmt(node.width),
                                  "height": str(NODE_H), "rx": "6"})
        for i, line in enumerate(node.lines):
            text = ET.SubElement(g, "text", {"x": _fmt(node.x), "y": _fmt(node.y + 17 + 16 * i),
                                             "class": "name" if i == 0 else "detail"})
            text.text = line
    return svg

"""The report page's charts, drawn with matplotlib and embedded as inline SVG.

matplotlib writes a standalone SVG document; `inline_svg` turns it into an element of the page:
no XML namespaces (inline SVG in HTML needs none, and the page then names no URL at all), no
metadata block, no global `<style>` (the page scopes matplotlib's one rule to its plots), and
every `id` and every reference to one prefixed with the chart's name, since several charts share
one document and matplotlib numbers its ids per figure. `svg.hashsalt` fixes the ids matplotlib
derives from hashes and `Date: None` leaves out the time, so that the same build gives the same
page byte for byte. Text stays text (`svg.fonttype: none`): the browser draws it with its own
sans-serif font, and the page carries no embedded or external font.

Figures are `matplotlib.figure.Figure` objects, not pyplot's: nothing global (the backend, the
list of open figures) changes in the process that builds.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from hwgen.ops import PLUMBING_OPS

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
RC = {"svg.hashsalt": "hwgen-report", "svg.fonttype": "none", "font.size": 8, "axes.titlesize": 9,
      "axes.titleweight": "bold"}

COMPUTE, PLUMBING, BOTTLENECK = "#4c78a8", "#b0b0b0", "#d62728"
SIMULATED, TARGET, SYNTH, CAPACITY = "#2ca02c", "#222222", "#f58518", "#7f7f7f"


@dataclass(frozen=True)
class Capacity:
    """What the part holds, for the utilisation scales (bram18: 18 Kb block RAMs, two per 36 Kb)."""

    part: str
    luts: int
    ffs: int
    bram18: int
    dsp: int
    uram: int


def inline_svg(svg_text: str, scope: str) -> ET.Element:
    """matplotlib's SVG document as a namespace-free element for an HTML page, its ids under `scope`."""

    def scoped(value: str) -> str:
        return re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{scope}-{m.group(1)})", value)

    def convert(element: ET.Element) -> ET.Element | None:
        namespace, _, tag = element.tag.rpartition("}")
        if namespace.lstrip("{") not in ("", SVG_NS) or tag in ("metadata", "style"):
            return None
        attributes = {}
        for key, value in element.attrib.items():
            key_namespace, _, name = key.rpartition("}")
            if key_namespace.lstrip("{") not in ("", XLINK_NS):
                continue
            if name == "id":
                value = f"{scope}-{value}"
            elif name == "href" and value.startswith("#"):
                value = f"#{scope}-{value[1:]}"
            else:
                value = scoped(value)
            attributes[name] = value
        new = ET.Element(tag, attributes)
        new.text, new.tail = element.text, element.tail
        for child in element:
            converted = convert(child)
            if converted is not None:
                new.append(converted)
        return new

    root = convert(ET.fromstring(svg_text.encode("utf-8")))
    assert root is not None
    return root


def _render(fig, name: str, title: str) -> ET.Element:
    """The figure as an inline `<svg data-figure=name>` with `title` for screen readers and tooltips."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = inline_svg(buffer.getvalue(), name)
    svg.set("class", "plot")
    svg.set("role", "img")
    svg.set("data-figure", name)
    heading = ET.Element("title")
    heading.text = title
    svg.insert(0, heading)
    return svg


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


ROW_IN = 0.17  # inches per unit in the charts with a row per unit


def _unit_figure(width: float, names: list[str], top: float, bottom: float):
    """A figure with a row per unit, its margins (inches) set from the longest name: constrained
    layout would measure every tick label again, seconds for hundreds of units in every build."""
    from matplotlib.figure import Figure

    height = top + bottom + ROW_IN * max(len(names), 2)
    left = (max(len(name) for name in names) * 7 * 0.62 + 14) / 72  # 7 pt labels, DejaVu Sans' average width
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - 0.25 / width, top=1 - top / height, bottom=bottom / height)
    return fig


def cycles_chart(layers: list[dict], bottleneck: str | None, simulated: float | None,
                 target: int | None) -> ET.Element:
    """Estimated cycles per frame of every unit (the bottleneck in red), with the simulated cycles
    per frame of the whole design and the target as vertical lines."""
    import matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    with matplotlib.rc_context(RC):
        fig = _unit_figure(8.0, [layer["name"] for layer in layers], top=0.65, bottom=0.45)
        ax = fig.add_subplot()
        rows = range(len(layers))
        cycles = [layer["est_cycles"] for layer in layers]
        colours = [BOTTLENECK if layer["name"] == bottleneck else
                   PLUMBING if layer["op"] in PLUMBING_OPS else COMPUTE for layer in layers]
        ax.barh(rows, cycles, height=0.7, color=colours)
        ax.set_yticks(list(rows), [layer["name"] for layer in layers], fontsize=7)
        ax.set_ylim(len(layers) - 0.5, -0.5)
        ax.set_xlabel("cycles per frame")
        ax.grid(axis="x", alpha=0.3)
        handles = [Patch(color=COMPUTE, label="estimate: compute unit"),
                   Patch(color=PLUMBING, label="estimate: FIFO, converter, duplicator"),
                   Patch(color=BOTTLENECK, label="estimate: bottleneck (slowest unit)")]
        top = max(cycles)
        if simulated is not None:
            ax.axvline(simulated, color=SIMULATED, linestyle="--", linewidth=1.4)
            handles.append(Line2D([], [], color=SIMULATED, linestyle="--",
                                  label=f"simulated: {simulated:,.1f} cycles/frame (whole design)"))
            top = max(top, simulated)
        if target is not None:
            ax.axvline(target, color=TARGET, linestyle=":", linewidth=1.2)
            handles.append(Line2D([], [], color=TARGET, linestyle=":", label=f"target: {target:,} cycles/frame"))
            top = max(top, target)
        for row, layer in enumerate(layers):
            if layer["name"] == bottleneck:
                # inside a long bar (white, right-aligned), else after it: never past the axes
                inside = layer["est_cycles"] > 0.5 * top
                ax.annotate(f"bottleneck: {layer['name']} ({layer['est_cycles']:,})", (layer["est_cycles"], row),
                            xytext=(-4 if inside else 4, 0), textcoords="offset points", va="center",
                            ha="right" if inside else "left", color="white" if inside else BOTTLENECK,
                            fontsize=7, fontweight="bold")
        ax.set_xlim(0, top * 1.3)
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, fontsize=7)
    return _render(fig, "cycles", "Estimated cycles per frame per unit, simulated cycles per frame of the design")


def _synth_bram18(synth: dict) -> int:
    """Yosys's block RAMs as 18 Kb ones (a RAMB36 is two), the unit the estimates count in."""
    return synth["bram18"] + 2 * synth["bram36"]


RESOURCE_COLUMNS = (  # (title, estimate key, Yosys figure, capacity key)
    ("LUTs", "est_luts", lambda s: s["luts"], "luts"),
    ("FFs", None, lambda s: s["ffs"], "ffs"),
    ("BRAM18", "est_brams", _synth_bram18, "bram18"),
    ("DSPs", "est_dsps", lambda s: s["dsp"], "dsp"),
    ("URAM", "est_urams", lambda s: s.get("uram", 0), "uram"),
)


def resource_columns(layers: list[dict], capacity: Capacity) -> list[tuple]:
    """The resources worth a chart column: LUTs, BRAM and DSPs always, FFs where Yosys counted
    them, URAM where the part has it or a unit uses it."""
    synthesized = all("synth" in layer for layer in layers)
    chosen = []
    for title, est, real, cap in RESOURCE_COLUMNS:
        if est is None and not synthesized:
            continue
        if title == "URAM" and not capacity.uram and not any(layer.get("est_urams") for layer in layers):
            continue
        chosen.append((title, est, real, cap))
    return chosen


def unit_resources_chart(layers: list[dict], capacity: Capacity) -> ET.Element:
    """Per unit, each resource as estimated and as Yosys counted it (where `hwgen synth` ran); the
    top axis of each column is the share of the part."""
    import matplotlib
    from matplotlib.patches import Patch

    synthesized = all("synth" in layer for layer in layers)
    columns = resource_columns(layers, capacity)
    with matplotlib.rc_context(RC):
        fig = _unit_figure(2.3 * len(columns) + 1.2, [layer["name"] for layer in layers], top=0.75, bottom=0.6)
        fig.subplots_adjust(wspace=0.12)
        # not sharey: a shared axis keeps a tick per unit on every column, each one measured
        axes = fig.subplots(1, len(columns), squeeze=False)[0]
        rows = list(range(len(layers)))
        for ax, (title, est, real, cap) in zip(axes, columns):
            shift = 0.2 if synthesized and est else 0.0
            if est:
                ax.barh([r - shift for r in rows], [layer.get(est) or 0 for layer in layers],
                        height=0.4 if shift else 0.7, color=COMPUTE)
            if synthesized:
                ax.barh([r + shift for r in rows], [real(layer["synth"]) for layer in layers],
                        height=0.4 if shift else 0.7, color=SYNTH)
            ax.set_title(title)
            ax.grid(axis="x", alpha=0.3)
            ax.set_xlim(left=0)
            ax.set_ylim(len(layers) - 0.5, -0.5)
            if ax is not axes[0]:
                ax.set_yticks([])
            whole = getattr(capacity, cap)
            if whole:
                top = ax.secondary_xaxis("top", functions=(lambda v, w=whole: 100.0 * v / w,
                                                           lambda p, w=whole: p * w / 100.0))
                top.set_xlabel(f"% of {whole:,}", fontsize=7)
                top.tick_params(labelsize=6)
        axes[0].set_yticks(rows, [layer["name"] for layer in layers], fontsize=7)
        handles = [Patch(color=COMPUTE, label="estimate")]
        if synthesized:
            handles.append(Patch(color=SYNTH, label=f"Yosys synth_xilinx ({capacity.part})"))
        fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 0), ncol=2, frameon=False, fontsize=7)
    return _render(fig, "unit-resources", "Resources per unit: estimates and Yosys counts")


def utilisation_chart(rows: list[tuple[str, int | None, int | None, int]], capacity: Capacity) -> ET.Element:
    """The whole design's share of the part per resource: (name, estimate, Yosys, capacity) rows,
    a missing figure as None; 100 % marked."""
    import matplotlib
    from matplotlib.patches import Patch

    rows = [row for row in rows if row[3]]
    with matplotlib.rc_context(RC):
        fig = _figure(8.0, 1.0 + 0.45 * len(rows))
        ax = fig.add_subplot()
        most = 100.0
        for i, (name, est, real, whole) in enumerate(rows):
            for value, offset, colour in ((est, -0.18, COMPUTE), (real, 0.18, SYNTH)):
                if value is None:
                    continue
                share = 100.0 * value / whole
                most = max(most, share)
                ax.barh(i + offset, share, height=0.34, color=colour)
                ax.annotate(f"{value:,} of {whole:,} ({share:.1f} %)", (share, i + offset), xytext=(3, 0),
                            textcoords="offset points", va="center", fontsize=6.5)
        ax.axvline(100.0, color=CAPACITY, linestyle="--", linewidth=1)
        ax.set_yticks(range(len(rows)), [row[0] for row in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(0, most * 1.35)
        ax.set_xlabel(f"% of {capacity.part}")
        ax.grid(axis="x", alpha=0.3)
        handles = [Patch(color=COMPUTE, label="estimate"), Patch(color=SYNTH, label="Yosys")]
        ax.legend(handles=handles, loc="lower right", frameon=False, fontsize=7)
    return _render(fig, "utilisation", f"Share of {capacity.part} the design takes")

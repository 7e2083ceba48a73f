"""The report page itself: sections of tables and figures, built as an element tree.

The page is built with `xml.etree.ElementTree` and written with its HTML serializer, so every name
that comes from a user's model (node names reach the tables and the graph) is escaped, and no
markup is pasted together from strings. What is text here is the stylesheet and one small script,
both constants: the script records, once the page has loaded, which figures the browser drew
(each `<svg>` with a non-empty bounding box, each `<img>` decoded) and any script or loading error,
as attributes of `<body>` (`data-figures`: all of them, `data-rendered`, `data-errors`), which is
what the headless-browser test reads.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from hwgen.ops import PLUMBING_OPS
from hwgen.reportpage.graph import GRAPH_STYLE, graph_svg
from hwgen.reportpage.plots import Capacity, cycles_chart, resource_columns, unit_resources_chart, utilisation_chart

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 78em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f3f3f3; }
tr.bottleneck td { background: #fde7e7; font-weight: bold; }
p.caption { color: #555; font-size: 0.85em; max-width: 60em; }
.scroll { overflow: auto; max-height: 85vh; border: 1px solid #ddd; }
svg.graph { display: block; margin: 0 auto; }
td:first-child { font-weight: 500; }
svg.plot { max-width: 100%; height: auto; }
svg.plot * { stroke-linejoin: round; stroke-linecap: butt; }
.ok { color: #1a7f37; } .bad { color: #c62828; font-weight: bold; }
""" + GRAPH_STYLE

CHECK_SCRIPT = """
(function () {
  var errors = [];
  function note(message) {
    errors.push(String(message));
    if (document.body) document.body.setAttribute('data-errors', errors.join(' | '));
  }
  window.addEventListener('error', function (event) {
    var target = event.target;
    note(target && target !== window ? 'failed to load ' + (target.src || target.href || target.tagName)
                                     : (event.message || 'script error'));
  }, true);
  window.addEventListener('unhandledrejection', function (event) { note('unhandled rejection: ' + event.reason); });
  var consoleError = console.error;
  console.error = function () { note(Array.prototype.join.call(arguments, ' ')); return consoleError.apply(console, arguments); };
  window.addEventListener('load', function () {
    var drawn = [];
    document.querySelectorAll('[data-figure]').forEach(function (figure) {
      var ok = false;
      try {
        if (figure.tagName.toLowerCase() === 'img') {
          ok = figure.complete && figure.naturalWidth > 0;
        } else {
          var box = figure.getBBox();
          ok = box.width > 0 && box.height > 0 && figure.querySelector('path, rect, text') !== null;
        }
      } catch (err) { note('checking ' + figure.getAttribute('data-figure') + ': ' + err); }
      if (ok) drawn.push(figure.getAttribute('data-figure'));
    });
    document.body.setAttribute('data-rendered', drawn.join(' '));
    document.body.setAttribute('data-errors', errors.join(' | '));
  });
})();
"""


@dataclass
class BuildData:
    """What the page shows, as read from the build folder (None: that command has not run)."""

    report: dict
    accelerator: dict
    specs: dict
    capacity: Capacity
    sim: dict | None
    verify: dict | None


def _num(value) -> str:
    """A table cell: thousands separated, a dash for what does not apply."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return str(value)


def _table(parent: ET.Element, header: list[str], rows: list[list], row_classes: list[str] | None = None) -> ET.Element:
    table = ET.SubElement(parent, "table")
    if any(header):
        tr = ET.SubElement(ET.SubElement(table, "thead"), "tr")
        for name in header:
            ET.SubElement(tr, "th").text = name
    body = ET.SubElement(table, "tbody")
    for i, row in enumerate(rows):
        tr = ET.SubElement(body, "tr", {"class": row_classes[i]} if row_classes and row_classes[i] else {})
        for value in row:
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool) or value is None
            ET.SubElement(tr, "td", {"class": "n"} if numeric else {}).text = _num(value)
    return table


def _section(body: ET.Element, anchor: str, title: str) -> ET.Element:
    section = ET.SubElement(body, "section", {"id": anchor})
    ET.SubElement(section, "h2").text = title
    return section


def _caption(parent: ET.Element, text: str) -> None:
    ET.SubElement(parent, "p", {"class": "caption"}).text = text


def _percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{100 * value:.2f} %"


def summary_rows(d: BuildData) -> list[list]:
    r = d.report
    target = r.get("target", {})
    layers = r["layers"]
    compute = sum(1 for layer in layers if layer["op"] not in PLUMBING_OPS)
    rows = [["units", f"{len(layers)} ({compute} compute, {len(layers) - compute} FIFOs, converters, duplicators)"],
            ["clock", f"{r['clock_mhz']:g} MHz"],
            ["estimated cycles per frame", f"{r['totals']['max_est_cycles']:,} ({r['est_fps']:,.0f} FPS)"],
            ["target", ("the fastest folding that fits" + (f"; a faster one: {target['binds']['text']}"
                                                             if target.get("binds") else ""))
             if target.get("cycles") is None else
             f"{target['cycles']:,} cycles per frame ({'met' if target.get('met') else 'NOT met'})"],
            ["bottleneck", f"{target.get('limited_by')} ({target.get('reached_cycles', 0):,} cycles per frame)"],
            ["FIFO sizing", r.get("fifo_sizing") or "none"]]
    if d.sim:
        fps = r["clock_mhz"] * 1e6 / d.sim["cycles_per_frame"] if d.sim.get("cycles_per_frame") else None
        rows.append(["simulated (rtlsim)", f"{d.sim['cycles_per_frame']:,.1f} cycles per frame"
                     + (f" ({fps:,.0f} FPS)" if fps else "") + f", latency {d.sim.get('latency_cycles', 0):,} cycles, "
                     f"{d.sim.get('frames')} frames, stall probability {d.sim.get('stall_prob', 0):g}"])
    else:
        rows.append(["simulated (rtlsim)", "not yet: hwgen sim OUT --input X.npy --output Y.npy"])
    if d.verify:
        rows.append(["verification", d.verify.get("summary", "")])
    if d.verify and d.verify.get("model_accuracy") is not None:
        rows.append(["top-1 accuracy", f"model {_percent(d.verify['model_accuracy'])}, accelerator "
                     f"{_percent(d.verify['accelerator_accuracy'])}"])
    synth = r.get("synth")
    if synth:
        rows.append(["synthesis (Yosys)", f"{synth['part']}: {synth['luts']:,} LUTs, {synth['ffs']:,} FFs, "
                     f"{synth['bram36']} BRAM36 + {synth['bram18']} BRAM18, {synth['dsp']} DSPs, "
                     f"{synth.get('uram', 0)} URAM, {synth['logic_levels']} levels of logic at most; "
                     f"{'fits' if synth['fits'] else 'does NOT fit'}"])
    else:
        rows.append(["synthesis (Yosys)", "not yet: hwgen synth OUT"])
    return rows


def folding_section(body: ET.Element, d: BuildData) -> None:
    section = _section(body, "folding", "2. Folding per layer")
    keys = [k for k in ("PE", "SIMD", "MW", "MH", "MMV") if any(layer.get(k) is not None for layer in d.report["layers"])]
    layers = [layer for layer in d.report["layers"] if any(layer.get(k) is not None for k in keys)]
    bottleneck = d.report.get("target", {}).get("limited_by")
    _caption(section, "PE: output neurons (channels) computed in parallel; SIMD: inputs taken per PE per clock; "
                      "MW x MH: the layer's matrix; MMV: window pieces a window generator emits per clock. "
                      "Units without folding (FIFOs, converters) are left out.")
    _table(section, ["layer", "op", *keys, "est. cycles/frame"],
           [[layer["name"], layer["op"], *[layer.get(k) for k in keys], layer["est_cycles"]] for layer in layers],
           ["bottleneck" if layer["name"] == bottleneck else "" for layer in layers])


def cycles_section(body: ET.Element, d: BuildData) -> None:
    section = _section(body, "cycles", "3. Cycles per frame: estimated per unit, simulated for the design")
    r = d.report
    bottleneck = r.get("target", {}).get("limited_by")
    simulated = d.sim.get("cycles_per_frame") if d.sim else None
    section.append(cycles_chart(r["layers"], bottleneck, simulated, r.get("target", {}).get("cycles")))
    sim_text = (f"The dashed line is what rtlsim measured for the whole design ({simulated:,.1f} cycles per frame, "
                f"sim.json); the simulation counts cycles at the accelerator's ports only, so there is no "
                f"simulated figure per unit. A stall-free pipeline runs at its slowest unit's estimate.") \
        if simulated is not None else "No simulation yet (hwgen sim OUT ...): no simulated figure to compare."
    slowest = max(layer["est_cycles"] for layer in r["layers"])
    ties = [layer["name"] for layer in r["layers"] if layer["est_cycles"] == slowest
            and layer["name"] != bottleneck and layer["op"] not in PLUMBING_OPS]
    tie_text = f" ({', '.join(ties)} take{'s' if len(ties) == 1 else ''} as many cycles)" if ties else ""
    _caption(section, f"Bars: each unit's estimated cycles per frame (est_cycles); the bottleneck, {bottleneck}"
                      f"{tie_text}, sets the frame rate. {sim_text}")


def resources_section(body: ET.Element, d: BuildData) -> None:
    section = _section(body, "resources", f"4. Resources per unit and of {d.capacity.part}")
    layers, cap = d.report["layers"], d.capacity
    synth = d.report.get("synth")
    synthesized = synth is not None and all("synth" in layer for layer in layers)
    section.append(unit_resources_chart(layers, cap))
    _caption(section, "Blue: hwgen's estimates (report.json est_*); orange: Yosys synth_xilinx, each unit "
                      "synthesized on its own (hwgen synth), block RAMs counted as 18 Kb halves. "
                      + ("" if synthesized else "No synthesis yet (hwgen synth OUT): estimates only."))
    totals = d.report["totals"]
    rows = [("LUTs", totals["est_luts"], synth["luts"] if synthesized else None, cap.luts),
            ("FFs", None, synth["ffs"] if synthesized else None, cap.ffs),
            ("BRAM18", totals["est_brams"], synth["bram18"] + 2 * synth["bram36"] if synthesized else None, cap.bram18),
            ("DSPs", totals["est_dsps"], synth["dsp"] if synthesized else None, cap.dsp),
            ("URAM", totals.get("est_urams", 0), synth.get("uram", 0) if synthesized else None, cap.uram)]
    rows = [row for row in rows if row[1] is not None or row[2] is not None]
    section.append(utilisation_chart(rows, cap))
    _caption(section, f"The whole design against {cap.part}'s capacity (100 %: the dashed line)."
                      + (" The Yosys totals include the top level's own cells." if synthesized else ""))
    columns = resource_columns(layers, cap)
    header = ["unit", "op"]
    for title, est, _, _ in columns:
        if est:
            header.append(f"{title} est.")
        if synthesized:
            header.append(f"{title} Yosys")
    if synthesized:
        header.append("logic levels")
    table_rows = []
    for layer in layers:
        row = [layer["name"], layer["op"]]
        for _, est, real, _ in columns:
            if est:
                row.append(layer.get(est))
            if synthesized:
                row.append(real(layer["synth"]))
        if synthesized:
            row.append(layer["synth"].get("logic_levels"))
        table_rows.append(row)
    total_row: list = ["total", ""]
    capacity_row: list = [f"{cap.part} holds", ""]
    for _, est, real, key in columns:
        if est:
            total_row.append(totals.get(est, 0))
            capacity_row.append(getattr(cap, key))
        if synthesized:
            total_row.append(real(synth))
            capacity_row.append(getattr(cap, key))
    if synthesized:
        total_row.append(synth.get("logic_levels"))
        capacity_row.append(None)
    bottleneck = d.report.get("target", {}).get("limited_by")
    _table(section, header, table_rows + [total_row, capacity_row],
           ["bottleneck" if layer["name"] == bottleneck else "" for layer in layers] + ["", ""])
    parts = d.report.get("parts") or []
    if parts:
        ET.SubElement(section, "h3").text = "Sized for other parts (estimates)"
        _table(section, ["part", "LUTs", "BRAM18", "URAM", "DSPs", "weight bits", "threshold bits", "fits",
                         "FPS at its clock"],
               [[p["part"], f"{p['est_luts']:,} / {p['luts']:,}", f"{p['est_bram18']:,} / {p['bram18']:,}",
                 f"{p['est_uram']:,} / {p['uram']:,}", f"{p['est_dsps']:,} / {p['dsp']:,}", p["weight_bits"],
                 p["threshold_bits"], p["fits"], f"{p['fps']:,.0f} at {p['clock_mhz']:g} MHz"] for p in parts])


def fifo_section(body: ET.Element, d: BuildData) -> None:
    section = _section(body, "fifos", "5. FIFO depths")
    streams = d.accelerator.get("streams") or []
    feeds = {s.get("producer"): s for s in streams}
    fed = {s.get("consumer"): s for s in streams}
    rows = []
    for layer in d.report["layers"]:
        if layer["op"] != "StreamingFifo":
            continue
        into, out = fed.get(layer["name"], {}), feeds.get(layer["name"], {})
        spec = d.specs.get(into.get("tensor"))
        rows.append([layer["name"], layer.get("depth"), spec.width if spec is not None else None,
                     f"{into.get('producer') or 'input'} \u2192 {out.get('consumer') or 'output'}",
                     layer["est_luts"], layer["est_brams"]])
    sizing = d.report.get("fifo_sizing")
    _caption(section, "Depth in beats. A chain of units that send evenly needs 2 per edge, the FIFO after a unit "
                      "that sends in bursts (a pool) holds its burst, and a FIFO in front of a join holds what its "
                      f"path can lead the others by: sized {sizing or 'by model'}.")
    _table(section, ["FIFO", "depth (beats)", "width (bits)", "between", "est. LUTs", "est. BRAM18"], rows)


def accuracy_section(body: ET.Element, d: BuildData) -> None:
    section = _section(body, "accuracy", "6. Model vs accelerator")
    v = d.verify
    if not v:
        _caption(section, "No verification yet: hwgen verify OUT --input X.npy [--labels Y.npy] runs the model as "
                          "given beside rtlsim and writes verify.json.")
        return
    passed = ET.SubElement(section, "p", {"class": "ok" if v.get("passed") else "bad"})
    passed.text = v.get("summary", "")
    frames = v.get("frames", 0)
    rows = [["frames", frames],
            ["frames whose outputs differ from the model as given", v.get("mismatched_frames")],
            ["of them on a threshold tie the model's float rounding decides", v.get("tie_frames")],
            ["frames whose integers differ from the integer graph (hardware errors)", v.get("integer_mismatches")],
            ["passed", v.get("passed")]]
    if v.get("model_accuracy") is not None:
        rows += [["top-1 accuracy of the model (labels)", _percent(v["model_accuracy"])],
                 ["top-1 accuracy of the accelerator (labels)", _percent(v["accelerator_accuracy"])],
                 ["frames where both pick the same class", f"{v['agreeing_frames']:,} / {frames:,}"]]
    _table(section, ["verify.json", ""], rows)
    if v.get("model_accuracy") is None:
        _caption(section, "Without labels there is no accuracy: hwgen verify OUT --input X.npy --labels Y.npy.")


def page(d: BuildData) -> ET.Element:
    """The whole `<html>` element."""
    r = d.report
    html = ET.Element("html", {"lang": "en"})
    head = ET.SubElement(html, "head")
    ET.SubElement(head, "meta", {"charset": "utf-8"})
    ET.SubElement(head, "meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"})
    ET.SubElement(head, "title").text = f"hwgen build: {d.accelerator.get('top', 'accelerator')}"
    ET.SubElement(head, "style").text = STYLE
    ET.SubElement(head, "script").text = CHECK_SCRIPT
    body = ET.SubElement(html, "body")
    ET.SubElement(body, "h1").text = (f"hwgen build: {d.accelerator.get('top', 'accelerator')}, "
                                      f"{len(r['layers'])} units")
    nav = ET.SubElement(body, "nav")
    for anchor, title in (("summary", "summary"), ("graph", "graph"), ("folding", "folding"), ("cycles", "cycles"),
                          ("resources", "resources"), ("fifos", "FIFOs"), ("accuracy", "accuracy")):
        ET.SubElement(nav, "a", {"href": f"#{anchor}"}).text = title
    section = _section(body, "summary", "Summary")
    _table(section, ["", ""], summary_rows(d))
    section = _section(body, "graph", "1. Dataflow graph")
    _caption(section, "Every node of the plumbed graph, top to bottom from the input: compute units (blue), FIFOs "
                      "(grey), width converters and duplicators (yellow), with their folding and estimates; each "
                      "arrow is a stream, labelled elements per beat x datatype = bits per beat. The bottleneck "
                      "has a red border. Hover for every figure of a node.")
    scroll = ET.SubElement(section, "div", {"class": "scroll"})
    scroll.append(graph_svg(r, d.accelerator, d.specs))
    folding_section(body, d)
    cycles_section(body, d)
    resources_section(body, d)
    fifo_section(body, d)
    accuracy_section(body, d)
    footer = ET.SubElement(body, "p", {"class": "caption"})
    footer.text = ("Written by hwgen from report.json, accelerator.json, the last graph checkpoint and, where "
                   "they exist, sim.json and verify.json; hwgen report OUT writes it again.")
    figures = [el.get("data-figure") for el in body.iter() if el.get("data-figure")]
    body.set("data-figures", " ".join(figures))
    return html


def serialize(html: ET.Element) -> str:
    return "<!DOCTYPE html>\n" + ET.tostring(html, encoding="unicode", method="html") + "\n"

"""Stitching: one top-level module that wires the hardware nodes of a graph together.

Each hardware node becomes its own module (`<top>_<node name>`, in `rtl/<module>.v` and, for
synthesis, the same design as RTLIL in `rtl/<module>.il`); the top module instantiates them and
connects one stream per graph edge, and exposes the AXI-Stream contract of `hwgen.rtl.axis`
(`ap_clk`, `ap_rst_n`, `s_axis_*`, `m_axis_*`, byte-padded `tdata`). Stitching knows only the
edges and each unit's stream widths, never a unit's insides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amaranth import ClockDomain, ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.errors import HwgenError
from hwgen.ops import unit_of
from hwgen.rtl.emit import to_verilog_and_rtlil
from hwgen.streams import beat_bytes
from hwgen.units.base import StreamSpec, Unit


@dataclass(frozen=True)
class Instantiation:
    module: str
    unit: Unit
    inp: str  # tensor read
    out: str  # tensor written


class AcceleratorTop(wiring.Component):
    """The stitched accelerator: AXI-Stream in, units in a dataflow graph, AXI-Stream out."""

    def __init__(self, instances: list[Instantiation], in_tensor: str, out_tensor: str,
                 widths: dict[str, int]) -> None:
        self.instances, self.in_tensor, self.out_tensor, self.widths = instances, in_tensor, out_tensor, widths
        super().__init__({
            "ap_clk": In(1), "ap_rst_n": In(1),
            "s_axis_tdata": In(8 * beat_bytes(widths[in_tensor])),
            "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "m_axis_tdata": Out(8 * beat_bytes(widths[out_tensor])),
            "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.ap_clk), ResetSignal("sync").eq(~self.ap_rst_n)]
        edges = {t: (Signal(w, name=f"{_ident(t)}_tdata"), Signal(name=f"{_ident(t)}_tvalid"),
                     Signal(name=f"{_ident(t)}_tready")) for t, w in self.widths.items()}
        for inst in self.instances:
            ip, iv, ir = edges[inst.inp]
            op, ov, orr = edges[inst.out]
            m.submodules[inst.module] = Instance(
                inst.module,
                i_clk=ClockSignal("sync"), i_rst=ResetSignal("sync"),
                i_inp__payload=ip, i_inp__valid=iv, o_inp__ready=ir,
                o_out__payload=op, o_out__valid=ov, i_out__ready=orr,
            )
        ip, iv, ir = edges[self.in_tensor]
        op, ov, orr = edges[self.out_tensor]
        m.d.comb += [
            ip.eq(self.s_axis_tdata[: len(ip)]), iv.eq(self.s_axis_tvalid), self.s_axis_tready.eq(ir),
            self.m_axis_tdata.eq(op), self.m_axis_tvalid.eq(ov), orr.eq(self.m_axis_tready),
        ]
        return m


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


@dataclass(frozen=True)
class StitchedDesign:
    top: str
    files: list[Path]  # Verilog, units then the top
    input: StreamSpec
    output: StreamSpec
    rtlil: list[Path]  # the same modules as RTLIL, in the same order
    modules: dict[str, str]  # node name -> its module name (in accelerator.json, read by synthesis)


def stitch(model: ModelWrapper, rtl_dir: Path, top: str = "hwgen_accel") -> StitchedDesign:
    """Write one Verilog and one RTLIL file per hardware node plus the top module into `rtl_dir`."""
    rtl_dir.mkdir(parents=True, exist_ok=True)
    instances, widths, files, rtlil = [], {}, [], []
    for node in model.graph.node:
        unit = unit_of(model, node)
        if len(unit.inputs) != 1 or len(unit.outputs) != 1:
            raise HwgenError("units with several streams are not stitched yet", where=f"node {node.name}")
        module = f"{top}_{_ident(node.name)}"
        for tensor, spec in ((node.input[0], unit.inputs[0]), (node.output[0], unit.outputs[0])):
            if widths.setdefault(tensor, spec.width) != spec.width:
                raise HwgenError(f"stream widths disagree on edge ({widths[tensor]} vs {spec.width} bits)",
                                 where=f"tensor {tensor}")
        _write(unit.component(), module, rtl_dir, files, rtlil)
        instances.append(Instantiation(module, unit, node.input[0], node.output[0]))
    in_tensor, out_tensor = model.graph.input[0].name, model.graph.output[0].name
    _write(AcceleratorTop(instances, in_tensor, out_tensor, widths), top, rtl_dir, files, rtlil)
    first = next(i for i in instances if i.inp == in_tensor)
    last = next(i for i in instances if i.out == out_tensor)
    modules = {node.name: inst.module for node, inst in zip(model.graph.node, instances)}
    return StitchedDesign(top, files, first.unit.inputs[0], last.unit.outputs[0], rtlil, modules)


def _write(component: wiring.Component, module: str, rtl_dir: Path, verilog: list[Path],
           rtlil: list[Path]) -> None:
    """Write `rtl_dir/<module>.v` and `rtl_dir/<module>.il`, appending their paths to the lists."""
    texts = to_verilog_and_rtlil(component, module)
    for paths, suffix, text in zip((verilog, rtlil), (".v", ".il"), texts):
        paths.append(rtl_dir / f"{module}{suffix}")
        paths[-1].write_text(text)

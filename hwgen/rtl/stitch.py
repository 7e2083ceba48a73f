"""Stitching: one top-level module that wires the hardware nodes of a graph together.

Each hardware node becomes its own module (`<top>_<node name>`, in `rtl/<module>.v` and, for
synthesis, the same design as RTLIL in `rtl/<module>.il`); the top module instantiates them and
connects one stream per graph edge, and exposes the AXI-Stream contract of `hwgen.rtl.axis`
(`ap_clk`, `ap_rst_n`, `s_axis_*`, `m_axis_*`, byte-padded `tdata`). Stitching knows only the
edges and each unit's stream widths, never a unit's insides.

Units whose weights are loaded after reset (`Unit.weight_stream`) get their `wload` port from the
top's weight stream (`s_axis_weights`), one unit after the other in graph order, each for exactly
its share of beats; `weights.bin` beside the RTL is that stream.

Units that read DRAM (`Unit.dram_bytes_per_frame`) share up to `MAX_MASTERS` read masters of the top,
`m_axi<k>_*` (a `ReadArbiter` where a master has several readers), and the DRAM base `dram_base`
(`hwgen.rtl.axi`); `dram.bin` beside the RTL is what the DRAM holds from that base (each unit's
image at its offset).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from qonnx.core.datatype import BaseDataType

from amaranth import ClockDomain, ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.errors import HwgenError
from hwgen.ops import unit_of
from hwgen.rtl.axi import (
    DRAM_FILE, MAX_MASTERS, ReadArbiter, WriteArbiter, axi_read_members, axi_write_members, connect, top_name,
)
from hwgen.rtl.axis import WEIGHT_PORT, port_names
from hwgen.rtl.emit import rtlil_to_verilog_batch, to_rtlil, to_verilog_and_rtlil
from hwgen.streams import beat_bytes
from hwgen.units.base import StreamSpec, Unit
from hwgen.units.weight_stream import WEIGHT_BEAT_BITS, WEIGHTS_FILE


@dataclass(frozen=True)
class Instantiation:
    module: str
    unit: Unit
    inputs: tuple[str, ...]  # tensors read, one per input stream port
    outputs: tuple[str, ...]  # tensors written, one per output stream port


@dataclass(frozen=True)
class Edge:
    """One stream between two units (or a unit and a top-level port): the signals `<name>_tdata`,
    `<name>_tvalid`, `<name>_tready` of the top module carry it."""

    name: str
    tensor: str
    width: int
    producer: str | None  # node name, None for the accelerator input
    consumer: str | None  # node name, None for the accelerator output


class AcceleratorTop(wiring.Component):
    """The stitched accelerator: AXI-Stream in, units in a dataflow graph, AXI-Stream out."""

    def __init__(self, instances: list[Instantiation], edges: list[Edge], in_tensor: str, out_tensor: str,
                 weight_beats: dict[str, int] | None = None, max_masters: int = MAX_MASTERS) -> None:
        self.instances, self.edges = instances, edges
        self.in_tensor, self.out_tensor = in_tensor, out_tensor
        self.weight_beats = weight_beats or {}  # module -> beats of the weight stream it takes, in order
        by_tensor = {e.tensor: e for e in edges}
        members = {
            "ap_clk": In(1), "ap_rst_n": In(1),
            "s_axis_tdata": In(8 * beat_bytes(by_tensor[in_tensor].width)),
            "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "m_axis_tdata": Out(8 * beat_bytes(by_tensor[out_tensor].width)),
            "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
        }
        if self.weight_beats:
            members.update({f"{WEIGHT_PORT}_tdata": In(WEIGHT_BEAT_BITS), f"{WEIGHT_PORT}_tvalid": In(1),
                            f"{WEIGHT_PORT}_tready": Out(1)})
        #: the readers of each read master at the top (`share_masters`)
        self.groups = share_masters([i for i in instances if i.unit.dram_bytes_per_frame()], max_masters)
        for g, group in enumerate(self.groups):
            for name, member in axi_read_members(group[0].unit.data_bits).items():
                members[top_name(name, g)] = member
            if any(inst.unit.dram_writes() for inst in group):
                for name, member in axi_write_members(group[0].unit.data_bits).items():
                    members[top_name(name, g)] = member
        super().__init__(members)

    def _weight_router(self, m: Module) -> dict[str, dict[str, Signal]]:
        """The weight stream to each loading unit in turn: unit k takes beats until its share is
        in, then the next; after the last, the stream is refused. Returns each module's `wload`
        port signals."""
        data, valid = getattr(self, f"{WEIGHT_PORT}_tdata"), getattr(self, f"{WEIGHT_PORT}_tvalid")
        modules = list(self.weight_beats)
        turn = Signal(range(len(modules) + 1))
        count = Signal(range(max(self.weight_beats.values()) + 1))
        ports, readies = {}, []
        for k, module in enumerate(modules):
            ready = Signal(name=f"{module}_wload_ready")
            ports[module] = {"i_wload__payload": data, "i_wload__valid": valid & (turn == k),
                             "o_wload__ready": ready}
            readies.append((turn == k) & ready)
        take = Signal()
        m.d.comb += [getattr(self, f"{WEIGHT_PORT}_tready").eq(_any(readies)), take.eq(valid & _any(readies))]
        for k, module in enumerate(modules):
            with m.If(take & (turn == k)):
                with m.If(count == self.weight_beats[module] - 1):
                    m.d.sync += [turn.eq(k + 1), count.eq(0)]
                with m.Else():
                    m.d.sync += count.eq(count + 1)
        return ports

    def _read_masters(self, m: Module) -> dict[str, dict[str, object]]:
        """Each DRAM reader's AXI ports: straight to its master where it has one alone, else to
        its slot of the master's `ReadArbiter`; `dram_base` to every reader."""
        ports: dict[str, dict[str, object]] = {}
        for g, group in enumerate(self.groups):
            members = axi_read_members(group[0].unit.data_bits)
            arbiter = None
            if len(group) > 1:
                arbiter = m.submodules[f"dram_arbiter{g}"] = ReadArbiter(len(group), group[0].unit.data_bits)
                for name in members:
                    if name != "dram_base":
                        m.d.comb += connect(getattr(arbiter, "m_" + name.removeprefix("m_axi_")),
                                             getattr(self, top_name(name, g)), members[name].flow)
            for k, inst in enumerate(group):
                mine = {}
                for name, member in members.items():
                    direction = "i" if member.flow == wiring.In else "o"
                    if arbiter is None or name == "dram_base":
                        mine[f"{direction}_{name}"] = getattr(self, top_name(name, g))
                    else:
                        mine[f"{direction}_{name}"] = getattr(arbiter, f"s{k}_" + name.removeprefix("m_axi_"))
                ports[inst.module] = mine
            self._write_master(m, g, group, ports)
        return ports

    def _write_master(self, m: Module, g: int, group: list[Instantiation], ports: dict[str, dict[str, object]]) -> None:
        """The write channels of master `g`'s writers (FIFOs spilled to DRAM): straight to the
        master where it has one, else through a `WriteArbiter`."""
        writers = [inst for inst in group if inst.unit.dram_writes()]
        if not writers:
            return
        members = axi_write_members(group[0].unit.data_bits)
        arbiter = None
        if len(writers) > 1:
            arbiter = m.submodules[f"dram_write_arbiter{g}"] = WriteArbiter(len(writers), group[0].unit.data_bits)
            for name, member in members.items():
                m.d.comb += connect(getattr(arbiter, "m_" + name.removeprefix("m_axi_")),
                                    getattr(self, top_name(name, g)), member.flow)
        for k, inst in enumerate(writers):
            for name, member in members.items():
                direction = "i" if member.flow == wiring.In else "o"
                outer = (getattr(self, top_name(name, g)) if arbiter is None
                         else getattr(arbiter, f"s{k}_" + name.removeprefix("m_axi_")))
                ports[inst.module][f"{direction}_{name}"] = outer

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.ap_clk), ResetSignal("sync").eq(~self.ap_rst_n)]
        loads = self._weight_router(m) if self.weight_beats else {}
        reader_ports = self._read_masters(m)
        wires = {e.tensor: (Signal(e.width, name=f"{e.name}_tdata"), Signal(name=f"{e.name}_tvalid"),
                            Signal(name=f"{e.name}_tready")) for e in self.edges}
        for inst in self.instances:
            in_ports = port_names("inp", len(inst.unit.inputs))
            out_ports = port_names("out", len(inst.unit.outputs))
            ports = {}
            for port, tensor in zip(in_ports, inst.inputs):
                data, valid, ready = wires[tensor]
                ports.update({f"i_{port}__payload": data, f"i_{port}__valid": valid, f"o_{port}__ready": ready})
            for port, tensor in zip(out_ports, inst.outputs):
                data, valid, ready = wires[tensor]
                ports.update({f"o_{port}__payload": data, f"o_{port}__valid": valid, f"i_{port}__ready": ready})
            ports.update(loads.get(inst.module, {}))
            ports.update(reader_ports.get(inst.module, {}))
            m.submodules[inst.module] = Instance(inst.module, i_clk=ClockSignal("sync"),
                                                 i_rst=ResetSignal("sync"), **ports)
        ip, iv, ir = wires[self.in_tensor]
        op, ov, orr = wires[self.out_tensor]
        m.d.comb += [
            ip.eq(self.s_axis_tdata[: len(ip)]), iv.eq(self.s_axis_tvalid), self.s_axis_tready.eq(ir),
            self.m_axis_tdata.eq(op), self.m_axis_tvalid.eq(ov), orr.eq(self.m_axis_tready),
        ]
        return m


def share_masters(readers: list[Instantiation], max_masters: int = MAX_MASTERS) -> list[list[Instantiation]]:
    """The DRAM readers in at most `max_masters` groups, one read master each (a PS port), the
    most bytes per frame first onto the least loaded, each group in graph order."""
    count = min(len(readers), max_masters)
    groups: list[list[Instantiation]] = [[] for _ in range(count)]
    load = [0] * count
    for inst in sorted(readers, key=lambda i: -i.unit.dram_bytes_per_frame()):
        g = load.index(min(load))
        groups[g].append(inst)
        load[g] += inst.unit.dram_bytes_per_frame()
    order = {inst.module: i for i, inst in enumerate(readers)}
    return [sorted(group, key=lambda i: order[i.module]) for group in groups]


def _any(bits: list) -> object:
    out = bits[0]
    for bit in bits[1:]:
        out = out | bit
    return out


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
    edges: list[Edge]  # every stream of the top module (in accelerator.json, read by deadlock reports)
    weight_beats: int = 0  # beats of the weight stream (`weights.bin`); 0: every weight in the bitstream
    dram_bytes: int = 0  # the DRAM's contents (`dram.bin`) for read masters m_axi0..; 0: no DRAM
    dram_masters: int = 0  # read masters of the top (m_axi0..), each `dram_bits` wide
    dram_bits: int = 0
    dram_writers: list[int] = field(default_factory=list)  # the masters that also write (FIFOs in DRAM)
    dram_align: int = 0  # the power of two the DRAM base must be a multiple of (`Unit.dram_alignment`)


def _edges(model: ModelWrapper, specs: dict[str, tuple[list[StreamSpec], list[StreamSpec]]]) -> list[Edge]:
    """Every stream tensor with its one producer and one consumer, checked: a tensor read by two
    units would need two ready drivers (plumbing puts a DuplicateStreams there)."""
    in_tensor, out_tensor = model.graph.input[0].name, model.graph.output[0].name
    producer: dict[str, tuple[str, StreamSpec]] = {}
    consumer: dict[str, tuple[str, StreamSpec]] = {}
    order: list[str] = [in_tensor]
    for node in model.graph.node:
        ins, outs = specs[node.name]
        for tensor, spec in zip(stream_inputs(node, len(ins)), ins):
            if tensor in consumer:
                raise HwgenError(f"is read by {consumer[tensor][0]} and {node.name}: a stream has one reader "
                                 "(fan-out goes through DuplicateStreams)", where=f"tensor {tensor}")
            consumer[tensor] = (node.name, spec)
            order.append(tensor)
        for tensor, spec in zip(node.output, outs):
            producer[tensor] = (node.name, spec)
            order.append(tensor)
    edges = []
    for tensor in dict.fromkeys(order):
        made, read = producer.get(tensor), consumer.get(tensor)
        if made is None and tensor != in_tensor:
            raise HwgenError("is read but no unit writes it", where=f"tensor {tensor}")
        if read is None and tensor != out_tensor:
            raise HwgenError("is written but no unit reads it", where=f"tensor {tensor}")
        widths = {pair[1].width for pair in (made, read) if pair is not None}
        if len(widths) != 1:
            raise HwgenError(f"stream widths disagree on edge ({sorted(widths)} bits)", where=f"tensor {tensor}")
        edges.append(Edge(f"edge{len(edges)}", tensor, widths.pop(),
                          made[0] if made else None, read[0] if read else None))
    return edges


def stream_inputs(node, count: int) -> list[str]:
    return list(node.input[:count])


def stitch(model: ModelWrapper, rtl_dir: Path, top: str = "hwgen_accel",
           max_masters: int = MAX_MASTERS) -> StitchedDesign:
    """Write one Verilog and one RTLIL file per hardware node plus the top module into `rtl_dir`;
    the DRAM readers share at most `max_masters` read masters (the board's PS ports for them)."""
    rtl_dir.mkdir(parents=True, exist_ok=True)
    instances, files, rtlil, specs, modules = [], [], [], {}, {}
    units = []
    for node in model.graph.node:
        unit = unit_of(model, node)
        specs[node.name] = (list(unit.inputs), list(unit.outputs))
        module = f"{top}_{_ident(node.name)}"
        units.append((unit, module))
        instances.append(Instantiation(module, unit, tuple(stream_inputs(node, len(unit.inputs))),
                                       tuple(node.output[: len(unit.outputs)])))
        modules[node.name] = module
    for (unit, module), texts in zip(units, _emit_units(units)):
        _write_texts(texts, module, rtl_dir, files, rtlil)
    edges = _edges(model, specs)
    in_tensor, out_tensor = model.graph.input[0].name, model.graph.output[0].name
    shares = [(module, unit.weight_stream()) for unit, module in units]
    shares = [(module, beats) for module, beats in shares if beats is not None]
    weights = rtl_dir / WEIGHTS_FILE
    if shares:
        weights.write_bytes(np.concatenate([beats for _, beats in shares]).tobytes())
    elif weights.exists():
        weights.unlink()
    readers = [unit for unit, _ in units if unit.dram_bytes_per_frame()]
    dram = rtl_dir / DRAM_FILE
    image = np.zeros(max((u.offset + u.dram_image_bytes() for u in readers), default=0), np.uint8)
    for u in readers:
        image[u.offset:u.offset + u.dram_image_bytes()] = u.dram_image()
    if readers:
        dram.write_bytes(image.tobytes())
    elif dram.exists():
        dram.unlink()
    accel = AcceleratorTop(instances, edges, in_tensor, out_tensor, {m: len(b) for m, b in shares}, max_masters)
    _write(accel, top, rtl_dir, files, rtlil)
    first = next((i, k) for i in instances for k, t in enumerate(i.inputs) if t == in_tensor)
    last = next((i, k) for i in instances for k, t in enumerate(i.outputs) if t == out_tensor)
    return StitchedDesign(top, files, first[0].unit.inputs[first[1]], last[0].unit.outputs[last[1]], rtlil,
                          modules, edges, sum(len(b) for _, b in shares), image.size, len(accel.groups),
                          accel.groups[0][0].unit.data_bits if accel.groups else 0,
                          [g for g, group in enumerate(accel.groups) if any(i.unit.dram_writes() for i in group)],
                          max((u.dram_alignment() for u in readers), default=0))


#: Verilog and RTLIL already emitted in this process, by (unit parameters, module name): a build
#: stitches twice where FIFOs are sized (once with every FIFO deep, once sized), and only the
#: FIFOs differ. Bounded, since the texts of large units are large.
_emitted: dict[tuple, tuple[str, str]] = {}
_EMITTED_MAX = 512


def unit_key(unit: Unit) -> tuple:
    """Everything that determines a unit's gateware: its class and every field (arrays by content)."""
    values = []
    for f in dataclasses.fields(unit):
        if not f.init:
            continue
        v = getattr(unit, f.name)
        if isinstance(v, np.ndarray):
            v = (v.shape, str(v.dtype), hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest())
        elif isinstance(v, BaseDataType):
            v = v.name
        elif isinstance(v, tuple):
            v = tuple(x.name if isinstance(x, BaseDataType) else x for x in v)
        values.append((f.name, v))
    return (type(unit).__name__, tuple(values))


def _emit_units(units: list[tuple[Unit, str]]) -> list[tuple[str, str]]:
    """(Verilog, RTLIL) of each (unit, module name): from the cache, else elaborated to RTLIL here
    and turned into Verilog by one Yosys run for all the missing ones."""
    keys = [(unit_key(unit), module) for unit, module in units]
    missing = {module: to_rtlil(unit.component(), module) for (unit, module), key in zip(units, keys)
               if key not in _emitted}
    verilog = rtlil_to_verilog_batch(missing)
    texts = [(verilog[module], missing[module]) if module in missing else _emitted[key]
             for (_, module), key in zip(units, keys)]
    for key, text in zip(keys, texts):
        if key not in _emitted:
            while len(_emitted) >= _EMITTED_MAX:
                del _emitted[next(iter(_emitted))]
            _emitted[key] = text
    return texts


def _write(component: wiring.Component, module: str, rtl_dir: Path, verilog: list[Path],
           rtlil: list[Path]) -> None:
    """Write `rtl_dir/<module>.v` and `rtl_dir/<module>.il`, appending their paths to the lists."""
    _write_texts(to_verilog_and_rtlil(component, module), module, rtl_dir, verilog, rtlil)


def _write_texts(texts: tuple[str, str], module: str, rtl_dir: Path, verilog: list[Path], rtlil: list[Path]) -> None:
    for paths, suffix, text in zip((verilog, rtlil), (".v", ".il"), texts):
        paths.append(rtl_dir / f"{module}{suffix}")
        paths[-1].write_text(text)

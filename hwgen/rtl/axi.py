"""AXI4 read masters: the ports a unit that reads DRAM has, and their names at the top level.

A unit that reads DRAM (`hwgen.units.dram_reader`) has the read half of an AXI4 master as plain
members named `m_axi_<signal>` (address channel `ar*`, data channel `r*`), and the DRAM base
address as `dram_base`, an input the board's driver sets through an AXI-Lite register (the bench
sets it directly). At the top level, master k's signals are `m_axi<k>_<signal>`: what the Verilator
bench's DRAM model drives (`hwgen/sim/harness`) and what the Vivado design connects to a PS port.

Only the signals a reader needs are ports: `arsize` is the data width, `arburst` INCR, `arcache`
and `arprot` the defaults, all constants tied off where the master is connected. Addresses are 32
bits: the driver allocates the DRAM image in the low 4 GB, where the PS's contiguous memory lies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hwgen.errors import HwgenError

#: address bits of every read master
ADDR_BITS = 32
#: the beats of one burst at most: AXI3 (the Zynq-7000's HP ports) allows 16; the larger AXI4
#: bursts bring no more bandwidth through those ports
MAX_BURST = 16
#: an INCR burst must not cross this boundary (bytes)
BURST_BOUNDARY = 4096
#: beside a build's RTL: what the DRAM holds from `dram_base` on (each reader's image at its offset)
DRAM_FILE = "dram.bin"


def axi_read_members(data_bits: int) -> dict[str, wiring.Member]:
    """The read master's members, as a unit component has them (`m_axi_*`), and `dram_base`."""
    return {
        "dram_base": In(ADDR_BITS),
        "m_axi_araddr": Out(ADDR_BITS), "m_axi_arlen": Out(8), "m_axi_arvalid": Out(1), "m_axi_arready": In(1),
        "m_axi_rdata": In(data_bits), "m_axi_rlast": In(1), "m_axi_rvalid": In(1), "m_axi_rready": Out(1),
    }


def axi_write_members(data_bits: int) -> dict[str, wiring.Member]:
    """The write half of a master (`m_axi_aw*`, `w*`, `b*`), as a unit that writes DRAM has it
    beside its read half: `awsize` is the data width, `awburst` INCR, `wstrb` all ones and
    `bresp` unread, tied off where the master is connected."""
    return {
        "m_axi_awaddr": Out(ADDR_BITS), "m_axi_awlen": Out(8), "m_axi_awvalid": Out(1), "m_axi_awready": In(1),
        "m_axi_wdata": Out(data_bits), "m_axi_wlast": Out(1), "m_axi_wvalid": Out(1), "m_axi_wready": In(1),
        "m_axi_bvalid": In(1), "m_axi_bready": Out(1),
    }


def dram_member_names(component: wiring.Component) -> list[str]:
    """The AXI read master's and the base address's members of a unit component, none for a unit
    that does not read DRAM."""
    return [name for name in component.signature.members if name.startswith("m_axi_") or name == "dram_base"]


def connect(inner, outer, flow) -> object:
    """The assignment joining a unit's member `inner` to `outer` outside it: inner <- outer for a
    member the unit takes in (`flow` In), outer <- inner for one it drives."""
    return inner.eq(outer) if flow == wiring.In else outer.eq(inner)


def top_name(member: str, master: int) -> str:
    """`m_axi_araddr` of master k is `m_axi<k>_araddr` at the top; `dram_base` is shared."""
    return member if member == "dram_base" else f"m_axi{master}_" + member.removeprefix("m_axi_")


def read_dram(rtl_dir: Path, nbytes: int) -> np.ndarray | None:
    """A design's DRAM contents (uint8) from `dram.bin` beside its RTL, which must hold `nbytes`;
    None for a design that reads no DRAM (`nbytes` 0)."""
    if not nbytes:
        return None
    path = Path(rtl_dir) / DRAM_FILE
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise HwgenError("no such file: the design reads its weights from the DRAM image it holds",
                         where=str(path)) from None
    if data.size != nbytes:
        raise HwgenError(f"holds {data.size} bytes, the design's DRAM image has {nbytes}", where=str(path))
    return data


#: read masters a design has at most: the PS ports its readers share (HP1-HP3 of a board)
MAX_MASTERS = 3
#: bursts the arbiter keeps in flight on its master (the order their data comes back in)
ARBITER_BURSTS = 8


class ReadArbiter(wiring.Component):
    """Several readers' AXI4 read channels onto one master. Requests are granted one at a time,
    the readers visited in turn (a pointer that moves on each cycle it grants nothing: at most
    one cycle per reader between grants, against 16 cycles of data per burst); each grant's
    reader goes into an order FIFO, and the data channel (in order: one AXI ID) is routed to the
    reader at its head until `rlast`. Members: `s<k>_<signal>` for reader k (`m_axi_<signal>`
    of the reader's side), `m_<signal>` for the master."""

    def __init__(self, readers: int, data_bits: int) -> None:
        self.readers, self.data_bits = readers, data_bits
        read = {name: member for name, member in axi_read_members(data_bits).items() if name != "dram_base"}
        super().__init__(_arbiter_members(read, readers))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n = self.readers
        s = lambda k, name: getattr(self, f"s{k}_{name}")  # noqa: E731
        m.submodules.order = order = SyncFIFO(width=max(1, (n - 1).bit_length()), depth=ARBITER_BURSTS)
        pointer, grant = _grant_in_turn(m, self, "ar", n, order.w_rdy)
        m.d.comb += [order.w_data.eq(pointer), order.w_en.eq(grant)]
        # data: to the reader at the head of the order, until its burst's last beat
        head = order.r_data
        for k in range(n):
            mine = order.r_rdy & (head == k)
            m.d.comb += [s(k, "rdata").eq(self.m_rdata), s(k, "rlast").eq(self.m_rlast),
                         s(k, "rvalid").eq(self.m_rvalid & mine)]
        m.d.comb += [self.m_rready.eq(order.r_rdy & Array(s(k, "rready") for k in range(n))[head]),
                     order.r_en.eq(self.m_rvalid & self.m_rready & self.m_rlast)]
        return m


def _arbiter_members(master: dict[str, wiring.Member], ports: int) -> dict[str, wiring.Member]:
    """An arbiter's members: the master's channels as a unit has them (`m_<signal>`, out toward
    the DRAM), and each port's the other way round (`s<k>_<signal>`)."""
    flip = {wiring.In: Out, wiring.Out: In}
    members: dict[str, wiring.Member] = {}
    for name, member in master.items():
        signal = name.removeprefix("m_axi_")
        members[f"m_{signal}"] = member
        for k in range(ports):
            members[f"s{k}_{signal}"] = flip[member.flow](member.shape)
    return members


def _grant_in_turn(m: Module, arbiter: wiring.Component, channel: str, n: int, room: object) -> tuple[Signal, object]:
    """An arbiter's address channel (`channel` "ar" or "aw"): the request of the port under a
    pointer that visits the `n` ports in turn (moving on each cycle it grants nothing) is granted
    while the master's address register is free and there is `room`, and held there until the
    master takes it. Returns the pointer and the grant."""
    port = lambda k, name: getattr(arbiter, f"s{k}_{channel}{name}")  # noqa: E731
    valid, ready = getattr(arbiter, f"m_{channel}valid"), getattr(arbiter, f"m_{channel}ready")
    pointer = Signal(range(n))
    requesting = Signal()
    m.d.comb += requesting.eq(Array(port(k, "valid") for k in range(n))[pointer])
    grant = ~valid & requesting & room
    with m.If(grant):
        m.d.sync += [valid.eq(1), getattr(arbiter, f"m_{channel}addr").eq(Array(port(k, "addr") for k in range(n))[pointer]),
                     getattr(arbiter, f"m_{channel}len").eq(Array(port(k, "len") for k in range(n))[pointer])]
    with m.Elif(valid & ready):
        m.d.sync += valid.eq(0)
    with m.If(~grant):
        m.d.sync += pointer.eq(Mux(pointer == n - 1, 0, pointer + 1))
    for k in range(n):
        m.d.comb += port(k, "ready").eq(grant & (pointer == k))
    return pointer, grant


class WriteArbiter(wiring.Component):
    """Several writers' AXI4 write channels onto one master: address requests granted one at a
    time (a pointer visiting the writers in turn, as `ReadArbiter`), each grant's writer into an
    order FIFO that routes the write data (in address order, as AXI4 has it) from that writer
    until `wlast`, then into a second order FIFO that routes the responses back. Members:
    `s<k>_<signal>` for writer k, `m_<signal>` for the master."""

    def __init__(self, writers: int, data_bits: int) -> None:
        self.writers, self.data_bits = writers, data_bits
        super().__init__(_arbiter_members(axi_write_members(data_bits), writers))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n = self.writers
        s = lambda k, name: getattr(self, f"s{k}_{name}")  # noqa: E731
        index_bits = max(1, (n - 1).bit_length())
        m.submodules.data_order = data_order = SyncFIFO(width=index_bits, depth=ARBITER_BURSTS)
        m.submodules.answer_order = answer_order = SyncFIFO(width=index_bits, depth=ARBITER_BURSTS)
        unanswered = Signal(range(ARBITER_BURSTS + 1))  # granted bursts not yet answered: room in both FIFOs
        pointer, grant = _grant_in_turn(m, self, "aw", n, unanswered < ARBITER_BURSTS)
        m.d.sync += unanswered.eq(unanswered + grant - (self.m_bvalid & self.m_bready))
        m.d.comb += [data_order.w_data.eq(pointer), data_order.w_en.eq(grant)]
        # data: from the writer at the head of the data order until its burst's last beat, whose
        # writer then waits for its answer
        head = data_order.r_data
        m.d.comb += [self.m_wvalid.eq(data_order.r_rdy & Array(s(k, "wvalid") for k in range(n))[head]),
                     self.m_wdata.eq(Array(s(k, "wdata") for k in range(n))[head]),
                     self.m_wlast.eq(Array(s(k, "wlast") for k in range(n))[head])]
        last = self.m_wvalid & self.m_wready & self.m_wlast
        m.d.comb += [data_order.r_en.eq(last), answer_order.w_en.eq(last), answer_order.w_data.eq(head)]
        for k in range(n):
            m.d.comb += s(k, "wready").eq(self.m_wready & data_order.r_rdy & (head == k))
        # answers: to the writer at the head of the answer order
        for k in range(n):
            m.d.comb += s(k, "bvalid").eq(self.m_bvalid & answer_order.r_rdy & (answer_order.r_data == k))
        m.d.comb += [self.m_bready.eq(answer_order.r_rdy & Array(s(k, "bready") for k in range(n))[answer_order.r_data]),
                     answer_order.r_en.eq(self.m_bvalid & self.m_bready)]
        return m

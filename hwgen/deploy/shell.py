"""The accelerator as the AXI DMA sees it: `tdata` padded to 8 x 2^k bits, TLAST on each frame's last
output beat, TKEEP all ones. An Amaranth component around the build's top module (instantiated
by name, its Verilog is `OUT/rtl/<top>.v`); Vivado packages this shell as the IP.

    s_axis_tdata[W_in]  --(low bits)-->  <top>.s_axis_tdata   (the rest, and s_axis_tlast, ignored:
                                                               the accelerator counts its own beats)
    <top>.m_axis_tdata  --(zero-padded)-->  m_axis_tdata[W_out], m_axis_tlast on beat
                                            `beats_per_frame` - 1 of every frame
    s_axis_weights_*    --(as it is)-->     <top>.s_axis_weights_*   (a build whose weights are
                                            loaded after reset: 64-bit, a second DMA's MM2S)
    m_axi_dram<k>_*     <--(gated)--        <top>.m_axi<k>_*   (a build that reads DRAM: read
                                            master k, to a PS port; `arvalid` / `arready` held
                                            low until the control block enables the readers)
    s_axi_control_*     --> DramControl --> <top>.dram_base  (the DRAM image's address, which
                                            the driver writes: `hwgen.deploy.control`)

A read master's constant AXI signals are the shell's: `arsize` the bus width, `arburst` INCR,
`arcache` 0011 (normal, bufferable: what the PS's HP ports expect of a non-coherent master),
`arprot` 000; `rresp` is not looked at (the PS answers OKAY for its DRAM). A master that also
writes (a FIFO spilled to DRAM: `accelerator.json` `dram_writers`) has the write channels too,
`awvalid` / `awready` held like `arvalid` / `arready`, `aw*` tied as `ar*`, `wstrb` all ones and
`bresp` not looked at.
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.deploy.control import CONTROL_PREFIX, DramControl, control_members
from hwgen.driver.wire import beat_bytes, dma_bytes
from hwgen.rtl.axi import ADDR_BITS, axi_read_members, axi_write_members, connect, top_name

#: the weight stream's tdata bits (`hwgen.units.weight_stream.WEIGHT_BEAT_BITS`; the driver's copy
#: of hwgen does not have the units)
WEIGHT_TDATA_BITS = 64

SHELL_NAME = "hwgen_dma_shell"
#: AXI's INCR burst type and the cache attributes of a non-coherent master on an HP port
AXI_BURST_INCR, AXI_CACHE = 0b01, 0b0011


def dram_port(master: int) -> str:
    """The shell's interface name of read master k (`m_axi_dram<k>`), which Vivado infers."""
    return f"m_axi_dram{master}"


def dram_port_members(data_bits: int) -> dict[str, object]:
    """One read master's signals at the shell, named without the `m_axi_dram<k>_` prefix."""
    return {
        "araddr": Out(ADDR_BITS), "arlen": Out(8), "arsize": Out(3), "arburst": Out(2), "arcache": Out(4),
        "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_bits), "rresp": In(2), "rlast": In(1), "rvalid": In(1), "rready": Out(1),
    }


def dram_write_members(data_bits: int) -> dict[str, object]:
    """The write channels of a master that writes, at the shell, named as `dram_port_members`."""
    return {
        "awaddr": Out(ADDR_BITS), "awlen": Out(8), "awsize": Out(3), "awburst": Out(2), "awcache": Out(4),
        "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wlast": Out(1), "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    }


class DmaShell(wiring.Component):
    def __init__(self, top: str, in_width: int, out_width: int, out_beats_per_frame: int,
                 weights: bool = False, dram_masters: int = 0, dram_bits: int = 64,
                 dram_writers: tuple[int, ...] = ()) -> None:
        """`dram_masters`: the read masters of a build that reads DRAM (`accelerator.json`), each
        `dram_bits` wide; `dram_writers`: those of them that also write."""
        self.top, self.out_beats, self.weights = top, out_beats_per_frame, weights
        self.dram_masters, self.dram_bits, self.dram_writers = dram_masters, dram_bits, tuple(dram_writers)
        self.in_bytes, self.out_bytes = beat_bytes(in_width), beat_bytes(out_width)
        self.in_dma, self.out_dma = 8 * dma_bytes(in_width), 8 * dma_bytes(out_width)
        members = {
            "ap_clk": In(1), "ap_rst_n": In(1),
            "s_axis_tdata": In(self.in_dma), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(self.out_dma), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "m_axis_tlast": Out(1), "m_axis_tkeep": Out(self.out_dma // 8),
        }
        if weights:
            members.update({"s_axis_weights_tdata": In(WEIGHT_TDATA_BITS), "s_axis_weights_tvalid": In(1),
                            "s_axis_weights_tready": Out(1), "s_axis_weights_tlast": In(1)})
        if dram_masters:
            members.update({f"{CONTROL_PREFIX}_{name}": member for name, member in control_members().items()})
            for k in range(dram_masters):
                members.update({f"{dram_port(k)}_{name}": member
                                for name, member in self._port_members(k).items()})
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.ap_clk), ResetSignal("sync").eq(~self.ap_rst_n)]
        out_data = Signal(8 * self.out_bytes)
        weights = {}
        if self.weights:
            weights = {"i_s_axis_weights_tdata": self.s_axis_weights_tdata,
                       "i_s_axis_weights_tvalid": self.s_axis_weights_tvalid,
                       "o_s_axis_weights_tready": self.s_axis_weights_tready}
        m.submodules.accelerator = Instance(
            self.top,
            i_ap_clk=self.ap_clk, i_ap_rst_n=self.ap_rst_n,
            i_s_axis_tdata=self.s_axis_tdata[:8 * self.in_bytes], i_s_axis_tvalid=self.s_axis_tvalid,
            o_s_axis_tready=self.s_axis_tready,
            o_m_axis_tdata=out_data, o_m_axis_tvalid=self.m_axis_tvalid, i_m_axis_tready=self.m_axis_tready,
            **weights, **self._dram(m),
        )
        m.submodules.frame_end = frame_end = FrameEnd(self.out_beats)
        m.d.comb += [frame_end.taken.eq(self.m_axis_tvalid & self.m_axis_tready),
                     self.m_axis_tdata.eq(out_data), self.m_axis_tlast.eq(frame_end.last),
                     self.m_axis_tkeep.eq((1 << (self.out_dma // 8)) - 1)]
        return m


    def _port_members(self, master: int) -> dict[str, object]:
        """Master k's signals at the shell: a read master's, and the write channels where it writes."""
        members = dram_port_members(self.dram_bits)
        if master in self.dram_writers:
            members.update(dram_write_members(self.dram_bits))
        return members

    def _dram(self, m: Module) -> dict[str, object]:
        """The control block and the read masters, gated by its `enabled`; the top's ports that
        join them (none for a build without DRAM)."""
        if not self.dram_masters:
            return {}
        m.submodules.control = control = DramControl()
        for name in control_members():
            m.d.comb += connect(getattr(control, name), getattr(self, f"{CONTROL_PREFIX}_{name}"),
                                control.signature.members[name].flow)
        ports: dict[str, object] = {"i_dram_base": control.dram_base}
        for k in range(self.dram_masters):
            port = {name: getattr(self, f"{dram_port(k)}_{name}") for name in self._port_members(k)}
            writes = k in self.dram_writers
            members = {**axi_read_members(self.dram_bits), **(axi_write_members(self.dram_bits) if writes else {})}
            inner = {}
            # the top's master k: its address handshakes through the gate (held until the masters
            # are enabled), the rest straight to the shell's port
            for channel in ("ar", "aw") if writes else ("ar",):
                valid, ready = Signal(name=f"{channel}valid{k}"), Signal(name=f"{channel}ready{k}")
                m.d.comb += [port[f"{channel}valid"].eq(valid & control.enabled),
                             ready.eq(port[f"{channel}ready"] & control.enabled),
                             port[f"{channel}size"].eq((self.dram_bits // 8).bit_length() - 1),
                             port[f"{channel}burst"].eq(AXI_BURST_INCR), port[f"{channel}cache"].eq(AXI_CACHE),
                             port[f"{channel}prot"].eq(0)]
                inner.update({f"m_axi_{channel}valid": valid, f"m_axi_{channel}ready": ready})
            if writes:
                m.d.comb += port["wstrb"].eq((1 << (self.dram_bits // 8)) - 1)
            for name, member in members.items():
                if name != "dram_base":
                    signal = inner.get(name, port.get(name.removeprefix("m_axi_")))
                    ports[("i_" if member.flow == In else "o_") + top_name(name, k)] = signal
        return ports


class FrameEnd(wiring.Component):
    """`last` is high while the beat on offer is a frame's last: it counts taken beats modulo
    `beats_per_frame` (the DMA's S2MM transfer of a frame ends on TLAST)."""

    def __init__(self, beats_per_frame: int) -> None:
        self.beats = beats_per_frame
        super().__init__({"taken": In(1), "last": Out(1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        beat = Signal(range(max(2, self.beats)))
        m.d.comb += self.last.eq(beat == self.beats - 1)
        with m.If(self.taken):
            m.d.sync += beat.eq(Mux(self.last, 0, beat + 1))
        return m

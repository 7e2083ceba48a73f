"""The accelerator as the AXI DMA sees it: `tdata` padded to 8 x 2^k bits, TLAST on each frame's last
output beat, TKEEP all ones. An Amaranth component around the build's top module (instantiated
by name, its Verilog is `OUT/rtl/<top>.v`); Vivado packages this shell as the IP.

    s_axis_tdata[W_in]  --(low bits)-->  <top>.s_axis_tdata   (the rest, and s_axis_tlast, ignored:
                                                               the accelerator counts its own beats)
    <top>.m_axis_tdata  --(zero-padded)-->  m_axis_tdata[W_out], m_axis_tlast on beat
                                            `beats_per_frame` - 1 of every frame
    s_axis_weights_*    --(as it is)-->     <top>.s_axis_weights_*   (a build whose weights are
                                            loaded after reset: 64-bit, a second DMA's MM2S)
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.driver.wire import beat_bytes, dma_bytes

#: the weight stream's tdata bits (`hwgen.units.weight_stream.WEIGHT_BEAT_BITS`; the driver's copy
#: of hwgen does not have the units)
WEIGHT_TDATA_BITS = 64

SHELL_NAME = "hwgen_dma_shell"


class DmaShell(wiring.Component):
    def __init__(self, top: str, in_width: int, out_width: int, out_beats_per_frame: int,
                 weights: bool = False) -> None:
        self.top, self.out_beats, self.weights = top, out_beats_per_frame, weights
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
            **weights,
        )
        m.submodules.frame_end = frame_end = FrameEnd(self.out_beats)
        m.d.comb += [frame_end.taken.eq(self.m_axis_tvalid & self.m_axis_tready),
                     self.m_axis_tdata.eq(out_data), self.m_axis_tlast.eq(frame_end.last),
                     self.m_axis_tkeep.eq((1 << (self.out_dma // 8)) - 1)]
        return m


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

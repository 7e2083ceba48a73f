"""The top-level port contract: what the Verilator harness drives and what the board shell connects.

Every simulated or deployed top module has exactly these ports, so the harness, the stitcher and the
board integration agree without knowing anything about the design inside:

    ap_clk, ap_rst_n (active low, synchronous)
    s_axis_tdata, s_axis_tvalid, s_axis_tready   (input stream)
    m_axis_tdata, m_axis_tvalid, m_axis_tready   (output stream)

`tdata` is padded up to a whole number of bytes (AXI-Stream and DMA engines move bytes); the pad
bits of `s_axis_tdata` are ignored and those of `m_axis_tdata` are driven with zeros.
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.streams import beat_bytes


def _payload_width(component: wiring.Component, port: str) -> int:
    """Bit width of the payload of a `stream.Signature` port, checking the port is a plain stream."""
    if port not in component.signature.members:
        raise TypeError(f"{type(component).__name__} has no port {port!r}")
    sig = component.signature.members[port].signature
    if not isinstance(sig, stream.Signature):
        raise TypeError(f"port {port!r} of {type(component).__name__} is not a stream")
    if sig.always_valid or sig.always_ready:
        # The harness stalls both sides, so both handshake wires must exist.
        raise TypeError(f"port {port!r} must have both valid and ready")
    return sig.members["payload"].shape.width


class AxisWrapper(wiring.Component):
    """Wrap a component with stream ports `inp` and `out` into the AXI-Stream top-level contract.

    The wrapper owns the `sync` clock domain (clock `ap_clk`, reset `~ap_rst_n`) so that the emitted
    module has no Amaranth-default `clk`/`rst` ports, only the contract's names.
    """

    def __init__(self, inner: wiring.Component) -> None:
        self.inner = inner
        self.in_width = _payload_width(inner, "inp")
        self.out_width = _payload_width(inner, "out")
        super().__init__(
            {
                "ap_clk": In(1),
                "ap_rst_n": In(1),
                "s_axis_tdata": In(8 * beat_bytes(self.in_width)),
                "s_axis_tvalid": In(1),
                "s_axis_tready": Out(1),
                "m_axis_tdata": Out(8 * beat_bytes(self.out_width)),
                "m_axis_tvalid": Out(1),
                "m_axis_tready": In(1),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [
            ClockSignal("sync").eq(self.ap_clk),
            ResetSignal("sync").eq(~self.ap_rst_n),
        ]
        m.submodules.unit = inner = self.inner
        m.d.comb += [
            inner.inp.payload.eq(self.s_axis_tdata[: self.in_width]),
            inner.inp.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(inner.inp.ready),
            self.m_axis_tdata.eq(inner.out.payload),
            self.m_axis_tvalid.eq(inner.out.valid),
            inner.out.ready.eq(self.m_axis_tready),
        ]
        return m

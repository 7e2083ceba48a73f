"""The top-level port contract: what the Verilator harness drives and what the board shell connects.

Every simulated or deployed top module has exactly these ports, so the harness, the stitcher and the
board integration agree without knowing anything about the design inside:

    ap_clk, ap_rst_n (active low, synchronous)
    s_axis_tdata, s_axis_tvalid, s_axis_tready   (input stream)
    m_axis_tdata, m_axis_tvalid, m_axis_tready   (output stream)

`tdata` is padded up to a whole number of bytes (AXI-Stream and DMA engines move bytes); the pad
bits of `s_axis_tdata` are ignored and those of `m_axis_tdata` are driven with zeros.

A design whose weights are loaded at start-up (weight memories without contents in the bitstream,
such as UltraRAM) has one more input stream, `s_axis_weights_*` (`WEIGHT_BEAT_BITS` of tdata),
that takes the build's `weights.bin` once after reset (`hwgen.units.weight_stream`); frames wait
until it has.
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.axi import connect, dram_member_names, top_name
from hwgen.streams import beat_bytes

#: the weight stream of a design whose weights are loaded at start-up
WEIGHT_PORT = "s_axis_weights"


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


def port_names(prefix: str, count: int) -> list[str]:
    """`[prefix]` for one stream, `[prefix0, prefix1, ...]` for several: the names of a unit's
    stream ports (`inp`/`out`) and of a top module's (`s_axis`/`m_axis`)."""
    return [prefix] if count == 1 else [f"{prefix}{i}" for i in range(count)]


def stream_port_names(component: wiring.Component) -> tuple[list[str], list[str]]:
    """A unit component's input and output stream ports, in order."""
    members = component.signature.members
    def names(prefix: str) -> list[str]:
        if prefix in members:
            return [prefix]
        found = []
        while f"{prefix}{len(found)}" in members:
            found.append(f"{prefix}{len(found)}")
        if not found:
            raise TypeError(f"{type(component).__name__} has no port {prefix!r} or {prefix}0")
        return found
    return names("inp"), names("out")


class AxisWrapper(wiring.Component):
    """Wrap a unit component with stream ports `inp`/`out` (or `inp0..`/`out0..`) into the
    AXI-Stream top-level contract (`s_axis_*`/`m_axis_*`, or `s_axis0_*..`/`m_axis0_*..`).

    The wrapper owns the `sync` clock domain (clock `ap_clk`, reset `~ap_rst_n`) so that the emitted
    module has no Amaranth-default `clk`/`rst` ports, only the contract's names.
    """

    def __init__(self, inner: wiring.Component) -> None:
        self.inner = inner
        self.in_ports, self.out_ports = stream_port_names(inner)
        self.in_widths = [_payload_width(inner, p) for p in self.in_ports]
        self.out_widths = [_payload_width(inner, p) for p in self.out_ports]
        self.s_names = port_names("s_axis", len(self.in_ports))
        self.m_names = port_names("m_axis", len(self.out_ports))
        members: dict[str, wiring.Member] = {"ap_clk": In(1), "ap_rst_n": In(1)}
        for name, width in zip(self.s_names, self.in_widths):
            members.update({f"{name}_tdata": In(8 * beat_bytes(width)), f"{name}_tvalid": In(1),
                            f"{name}_tready": Out(1)})
        for name, width in zip(self.m_names, self.out_widths):
            members.update({f"{name}_tdata": Out(8 * beat_bytes(width)), f"{name}_tvalid": Out(1),
                            f"{name}_tready": In(1)})
        # a unit that reads DRAM: its AXI read master as master 0, and the DRAM base address
        self.dram_members = dram_member_names(inner)
        for name in self.dram_members:
            members[top_name(name, 0)] = inner.signature.members[name]
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [
            ClockSignal("sync").eq(self.ap_clk),
            ResetSignal("sync").eq(~self.ap_rst_n),
        ]
        m.submodules.unit = inner = self.inner
        for port, name, width in zip(self.in_ports, self.s_names, self.in_widths):
            stream_in = getattr(inner, port)
            m.d.comb += [
                stream_in.payload.eq(getattr(self, f"{name}_tdata")[:width]),
                stream_in.valid.eq(getattr(self, f"{name}_tvalid")),
                getattr(self, f"{name}_tready").eq(stream_in.ready),
            ]
        for port, name in zip(self.out_ports, self.m_names):
            stream_out = getattr(inner, port)
            m.d.comb += [
                getattr(self, f"{name}_tdata").eq(stream_out.payload),
                getattr(self, f"{name}_tvalid").eq(stream_out.valid),
                stream_out.ready.eq(getattr(self, f"{name}_tready")),
            ]
        for name in self.dram_members:
            inside, outside = getattr(inner, name), getattr(self, top_name(name, 0))
            m.d.comb += connect(inside, outside, inner.signature.members[name].flow)
        return m

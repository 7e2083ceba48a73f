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

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: address bits of every read master
ADDR_BITS = 32
#: the beats of one burst at most: AXI3 (the Zynq-7000's HP ports) allows 16; the larger AXI4
#: bursts bring no more bandwidth through those ports
MAX_BURST = 16
#: an INCR burst must not cross this boundary (bytes)
BURST_BOUNDARY = 4096


def axi_read_members(data_bits: int) -> dict[str, wiring.Member]:
    """The read master's members, as a unit component has them (`m_axi_*`), and `dram_base`."""
    return {
        "dram_base": In(ADDR_BITS),
        "m_axi_araddr": Out(ADDR_BITS), "m_axi_arlen": Out(8), "m_axi_arvalid": Out(1), "m_axi_arready": In(1),
        "m_axi_rdata": In(data_bits), "m_axi_rlast": In(1), "m_axi_rvalid": In(1), "m_axi_rready": Out(1),
    }


def dram_member_names(component: wiring.Component) -> list[str]:
    """The AXI read master's and the base address's members of a unit component, none for a unit
    that does not read DRAM."""
    return [name for name in component.signature.members if name.startswith("m_axi_") or name == "dram_base"]


def top_name(member: str, master: int) -> str:
    """`m_axi_araddr` of master k is `m_axi<k>_araddr` at the top; `dram_base` is shared."""
    return member if member == "dram_base" else f"m_axi{master}_" + member.removeprefix("m_axi_")

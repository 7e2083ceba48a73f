"""The accelerator's control registers on the PS's general-purpose master (AXI4-Lite), for a build
that reads DRAM: where the DRAM image lies, and when the readers may start.

    offset 0x00  DRAM_BASE  (read/write)  physical address of the DRAM image (`dram.bin`), a
                                          multiple of `accelerator.json` `dram.align` (4 KB, or
                                          the largest ring in DRAM), below 4 GB; the readers add
                                          their offsets to it
    offset 0x04  STATUS     (read only)   bit 0: the readers are enabled

Out of reset the readers are held (their `arvalid` kept from the PS port, `arready` kept from them):
the bitstream knows no address. A write of DRAM_BASE enables them `ENABLE_DELAY` clocks later,
once the base has passed through the readers' registered address adders, so that no request leaves
with an address made from the old base. The driver writes DRAM_BASE once, after it has allocated
and filled the image (`hwgen.driver.accelerator`).

Writes take the address and data channels together (the PS's master offers both) and answer OKAY;
a write or read of another offset answers OKAY and changes nothing (reads give 0).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.axi import ADDR_BITS

#: the registers' byte offsets (the driver writes DRAM_BASE)
DRAM_BASE_OFFSET, STATUS_OFFSET = 0x00, 0x04
#: address bits of the register file (a 4 KB window, the smallest Vivado assigns)
CONTROL_ADDR_BITS = 12
#: clocks from a DRAM_BASE write to the readers' enable: the readers' address path is two registers
ENABLE_DELAY = 4
#: the AXI4-Lite slave's port prefix on the shell
CONTROL_PREFIX = "s_axi_control"


def control_members() -> dict[str, wiring.Member]:
    """The AXI4-Lite slave's signals, named without the `s_axi_control_` prefix."""
    return {
        "awaddr": In(CONTROL_ADDR_BITS), "awvalid": In(1), "awready": Out(1),
        "wdata": In(32), "wstrb": In(4), "wvalid": In(1), "wready": Out(1),
        "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
        "araddr": In(CONTROL_ADDR_BITS), "arvalid": In(1), "arready": Out(1),
        "rdata": Out(32), "rresp": Out(2), "rvalid": Out(1), "rready": In(1),
    }


class DramControl(wiring.Component):
    """The register file above: an AXI4-Lite slave, `dram_base` and `enabled` out."""

    def __init__(self) -> None:
        super().__init__({**control_members(), "dram_base": Out(ADDR_BITS), "enabled": Out(1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        # writes: both channels at once, one response outstanding at most
        take_write = self.awvalid & self.wvalid & ~self.bvalid
        m.d.comb += [self.awready.eq(take_write), self.wready.eq(take_write), self.bresp.eq(0)]
        delay = Signal(range(ENABLE_DELAY + 1))
        with m.If(take_write):
            m.d.sync += self.bvalid.eq(1)
            with m.If(self.awaddr[2:] == DRAM_BASE_OFFSET >> 2):
                for byte in range(4):
                    with m.If(self.wstrb[byte]):
                        m.d.sync += self.dram_base[8 * byte:8 * byte + 8].eq(self.wdata[8 * byte:8 * byte + 8])
                m.d.sync += [self.enabled.eq(0), delay.eq(ENABLE_DELAY)]
        with m.Elif(self.bvalid & self.bready):
            m.d.sync += self.bvalid.eq(0)
        with m.If(~take_write & (delay != 0)):
            m.d.sync += delay.eq(delay - 1)
            with m.If(delay == 1):
                m.d.sync += self.enabled.eq(1)
        # reads: one outstanding at most
        take_read = self.arvalid & ~self.rvalid
        m.d.comb += [self.arready.eq(take_read), self.rresp.eq(0)]
        with m.If(take_read):
            m.d.sync += self.rvalid.eq(1)
            with m.Switch(self.araddr[2:]):
                with m.Case(DRAM_BASE_OFFSET >> 2):
                    m.d.sync += self.rdata.eq(self.dram_base)
                with m.Case(STATUS_OFFSET >> 2):
                    m.d.sync += self.rdata.eq(self.enabled)
                with m.Default():
                    m.d.sync += self.rdata.eq(0)
        with m.Elif(self.rvalid & self.rready):
            m.d.sync += self.rvalid.eq(0)
        return m

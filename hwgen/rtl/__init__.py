"""Turning Amaranth components into Verilog: emission and the AXI-Stream top-level wrapper."""

from hwgen.rtl.axis import AxisWrapper
from hwgen.rtl.emit import to_verilog

__all__ = ["AxisWrapper", "to_verilog"]

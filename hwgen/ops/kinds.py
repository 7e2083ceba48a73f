"""The one registry of hardware ops: one op per unit class, named after it, and every op list that
other parts of hwgen need, derived from the unit classes' own `FOLDING` and `PLUMBING`."""

from __future__ import annotations

from hwgen.ops.hardware_op import HardwareOp
from hwgen.units.base import Unit
from hwgen.units.duplicate import DuplicateStreams
from hwgen.units.dwc import DataWidthConverter
from hwgen.units.fifo import StreamingFifo
from hwgen.units.add_streams import AddStreams
from hwgen.units.concat_streams import ConcatStreams
from hwgen.units.dram_fifo import DramFifo
from hwgen.units.dram_mvu import DramMVU
from hwgen.units.frame_mvu import FrameMVU
from hwgen.units.label_select import LabelSelect
from hwgen.units.lookup import ChannelwiseLookup
from hwgen.units.maxpool import MaxPool
from hwgen.units.mvu import MVU
from hwgen.units.reorder import Reorder
from hwgen.units.requantize import Requantize
from hwgen.units.sliding_window import SlidingWindow
from hwgen.units.sum_pool import SumPool
from hwgen.units.thresholding import Thresholding
from hwgen.units.window_max import WindowMax

UNITS: tuple[type[Unit], ...] = (MVU, DramMVU, FrameMVU, Thresholding, Requantize, ChannelwiseLookup, LabelSelect, SlidingWindow, MaxPool,
                                 WindowMax, SumPool, AddStreams, ConcatStreams, Reorder,
                                 StreamingFifo, DramFifo, DataWidthConverter, DuplicateStreams)

#: op type (= unit class name) -> the QONNX custom op class that builds and runs that unit
HARDWARE_OPS: dict[str, type[HardwareOp]] = {
    unit.__name__: type(unit.__name__, (HardwareOp,), {"unit_cls": unit, "__doc__": unit.__doc__})
    for unit in UNITS
}

#: ops that lowering makes from the model's layers (all but FIFOs, width converters, fan-out)
COMPUTE_OPS: frozenset[str] = frozenset(unit.__name__ for unit in UNITS if not unit.PLUMBING)
#: ops that only move streams, inserted by the plumbing stage
PLUMBING_OPS: frozenset[str] = frozenset(unit.__name__ for unit in UNITS if unit.PLUMBING)
#: op type -> its folding knobs and the dimension each must divide
FOLDING: dict[str, tuple[tuple[str, str], ...]] = {unit.__name__: unit.FOLDING for unit in UNITS if unit.FOLDING}

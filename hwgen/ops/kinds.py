"""One hardware op per unit kind: the op is named after its unit dataclass and only points at it."""

from __future__ import annotations

from hwgen.ops.hardware_op import HardwareOp
from hwgen.units.base import Unit
from hwgen.units.dwc import DataWidthConverter
from hwgen.units.fifo import StreamingFifo
from hwgen.units.global_pool import GlobalAccPool
from hwgen.units.label_select import LabelSelect
from hwgen.units.maxpool import MaxPool
from hwgen.units.mvu import MVU
from hwgen.units.sliding_window import SlidingWindow
from hwgen.units.thresholding import Thresholding

UNITS: tuple[type[Unit], ...] = (MVU, Thresholding, LabelSelect, StreamingFifo, DataWidthConverter,
                                 SlidingWindow, MaxPool, GlobalAccPool)

#: op type (= unit class name) -> the QONNX custom op class that builds and runs that unit
HARDWARE_OPS: dict[str, type[HardwareOp]] = {
    unit.__name__: type(unit.__name__, (HardwareOp,), {"unit_cls": unit, "__doc__": unit.__doc__})
    for unit in UNITS
}

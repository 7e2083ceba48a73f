"""One small class per hardware unit kind: each only names its unit dataclass."""

from __future__ import annotations

from hwgen.ops.hardware_op import HardwareOp
from hwgen.units import dwc, fifo, global_pool, label_select, maxpool, mvu, sliding_window, thresholding


class MVU(HardwareOp):
    unit_cls = mvu.MVU


class Thresholding(HardwareOp):
    unit_cls = thresholding.Thresholding


class LabelSelect(HardwareOp):
    unit_cls = label_select.LabelSelect


class StreamingFifo(HardwareOp):
    unit_cls = fifo.StreamingFifo


class DataWidthConverter(HardwareOp):
    unit_cls = dwc.DataWidthConverter


class SlidingWindow(HardwareOp):
    unit_cls = sliding_window.SlidingWindow


class MaxPool(HardwareOp):
    unit_cls = maxpool.MaxPool


class GlobalAccPool(HardwareOp):
    unit_cls = global_pool.GlobalAccPool


HARDWARE_OPS: dict[str, type[HardwareOp]] = {
    cls.__name__: cls for cls in (MVU, Thresholding, LabelSelect, StreamingFifo, DataWidthConverter,
                                  SlidingWindow, MaxPool, GlobalAccPool)
}

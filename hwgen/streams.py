"""The stream contract shared by the units, the stitcher, the simulator and the board driver.

A tensor travels channel-last, flattened in C order, as a fixed number of beats per frame. Element
`i` of a beat sits at bits `[i*w, (i+1)*w)` of the beat (LSB first); `w` is the bit width of the
element's datatype. On the wire a value is encoded as:

- `BIPOLAR` (-1/+1): one bit, 1 means +1 (so XNOR of two codes is the sign of their product);
- `INTn`: n-bit two's complement;
- `UINTn` / `BINARY`: plain unsigned.

Host files and DMA buffers hold each beat in `ceil(width/8)` little-endian bytes. The code is
`hwgen.driver.wire`, in numpy alone, so that the board driver runs exactly this; here it takes
QONNX datatypes.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import BaseDataType

from hwgen.driver import wire
from hwgen.driver.wire import beat_bytes, pack_beats, unpack_beats

__all__ = ["beat_bytes", "from_wire", "pack_beats", "to_wire", "unpack_beats"]


def to_wire(values: np.ndarray, dtype: BaseDataType) -> np.ndarray:
    """Encode integer values of `dtype` as unsigned wire codes (uint64)."""
    return wire.to_wire(values, dtype.name)


def from_wire(codes: np.ndarray, dtype: BaseDataType) -> np.ndarray:
    """Decode unsigned wire codes back to the integer values of `dtype` (int64)."""
    return wire.from_wire(codes, dtype.name)

"""The stream contract shared by the units, the stitcher, the simulator and the board driver.

A tensor travels channel-last, flattened in C order, as a fixed number of beats per frame. Element
`i` of a beat sits at bits `[i*w, (i+1)*w)` of the beat (LSB first); `w` is the bit width of the
element's datatype. On the wire a value is encoded as:

- `BIPOLAR` (-1/+1): one bit, 1 means +1 (so XNOR of two codes is the sign of their product);
- `INTn`: n-bit two's complement;
- `UINTn` / `BINARY`: plain unsigned.

Order. A frame of `pixels` pixels of `channels` channels, `lanes` channels a beat, goes pixel by
pixel (channel-last) unless it is cut into `groups` channel groups: then group after group, and
within a group pixel by pixel, `channels / groups / lanes` beats a pixel. One group is the
channel-last order above; `channels / lanes` groups is channel-major (tile by tile), the order of
a convolution that reads its weights once a frame, a tile of output channels at a time
(`hwgen.units.frame_mvu`). Units with parameters per channel take the order as a field
(`channel_groups`); `to_channel_last` / `from_channel_last` move a frame between the two.

Host files and DMA buffers hold each beat in `ceil(width/8)` little-endian bytes. The code is
`hwgen.driver.wire`, in numpy alone, so that the board driver runs exactly this; here it takes
QONNX datatypes.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import BaseDataType

from hwgen.driver import wire
from hwgen.driver.wire import beat_bytes, pack_beats, unpack_beats

__all__ = ["beat_bytes", "from_channel_last", "from_wire", "pack_beats", "to_channel_last", "to_wire",
           "unpack_beats"]


def to_channel_last(frames: np.ndarray, pixels: int, channels: int, groups: int) -> np.ndarray:
    """Frames (N, pixels x channels) in `groups` channel groups (see Order) as channel-last
    frames (N, pixels, channels)."""
    n = frames.shape[0]
    return frames.reshape(n, groups, pixels, channels // groups).transpose(0, 2, 1, 3).reshape(n, pixels, channels)


def from_channel_last(frames: np.ndarray, groups: int) -> np.ndarray:
    """Channel-last frames (N, pixels, channels) in `groups` channel groups, flattened (N, -1)."""
    n, pixels, channels = frames.shape
    return frames.reshape(n, pixels, groups, channels // groups).transpose(0, 2, 1, 3).reshape(n, -1)


def to_wire(values: np.ndarray, dtype: BaseDataType) -> np.ndarray:
    """Encode integer values of `dtype` as unsigned wire codes (uint64)."""
    return wire.to_wire(values, dtype.name)


def from_wire(codes: np.ndarray, dtype: BaseDataType) -> np.ndarray:
    """Decode unsigned wire codes back to the integer values of `dtype` (int64)."""
    return wire.from_wire(codes, dtype.name)

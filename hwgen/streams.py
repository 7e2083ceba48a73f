"""The stream contract shared by the units, the stitcher, the simulator and the board driver.

A tensor travels channel-last, flattened in C order, as a fixed number of beats per frame. Element
`i` of a beat sits at bits `[i*w, (i+1)*w)` of the beat (LSB first); `w` is the bit width of the
element's datatype. On the wire a value is encoded as:

- `BIPOLAR` (-1/+1): one bit, 1 means +1 (so XNOR of two codes is the sign of their product);
- `INTn`: n-bit two's complement;
- `UINTn` / `BINARY`: plain unsigned.

Host files and DMA buffers hold each beat in `ceil(width/8)` little-endian bytes.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType, BaseDataType

from hwgen.errors import HwgenError


def to_wire(values: np.ndarray, dtype: BaseDataType) -> np.ndarray:
    """Encode integer values of `dtype` as unsigned wire codes (uint64)."""
    v = np.asarray(values)
    if not np.all(np.equal(np.mod(v, 1), 0)):
        raise HwgenError(f"values are not integers, cannot encode as {dtype.name}")
    v = v.astype(np.int64)
    if not (np.all(v >= dtype.min()) and np.all(v <= dtype.max())):
        raise HwgenError(
            f"values in [{v.min()}, {v.max()}] do not fit {dtype.name} [{dtype.min()}, {dtype.max()}]"
        )
    if dtype == DataType["BIPOLAR"]:
        if np.any(v == 0):
            raise HwgenError("values hold 0, which is not a BIPOLAR value (-1 or +1)")
        return (v > 0).astype(np.uint64)
    bits = dtype.bitwidth()
    return (v & ((1 << bits) - 1)).astype(np.uint64)


def from_wire(codes: np.ndarray, dtype: BaseDataType) -> np.ndarray:
    """Decode unsigned wire codes back to the integer values of `dtype` (int64)."""
    c = np.asarray(codes).astype(np.int64)
    if dtype == DataType["BIPOLAR"]:
        return 2 * c - 1
    bits = dtype.bitwidth()
    if dtype.signed():
        return np.where(c >= (1 << (bits - 1)), c - (1 << bits), c)
    return c


def beat_bytes(width_bits: int) -> int:
    """Bytes that one beat of `width_bits` occupies in host memory and on a byte-wide AXI bus."""
    return (width_bits + 7) // 8


def pack_beats(codes: np.ndarray, elem_bits: int, elems_per_beat: int) -> np.ndarray:
    """Pack wire codes, shape (..., n*elems_per_beat), into beats of shape (..., n, beat_bytes).

    Element `i` of a beat lands at bits `[i*elem_bits, (i+1)*elem_bits)`, little-endian bytes.
    """
    codes = np.asarray(codes, dtype=np.uint64)
    if codes.shape[-1] % elems_per_beat:
        raise HwgenError(f"{codes.shape[-1]} elements do not split into beats of {elems_per_beat}")
    lead = codes.shape[:-1]
    beats = codes.shape[-1] // elems_per_beat
    shifts = np.arange(elem_bits, dtype=np.uint64)
    bits = ((codes[..., None] >> shifts) & np.uint64(1)).astype(np.uint8)
    bits = bits.reshape(*lead, beats, elems_per_beat * elem_bits)
    nbytes = beat_bytes(elems_per_beat * elem_bits)
    pad = nbytes * 8 - elems_per_beat * elem_bits
    if pad:
        bits = np.concatenate([bits, np.zeros((*lead, beats, pad), np.uint8)], axis=-1)
    return np.packbits(bits, axis=-1, bitorder="little")


def unpack_beats(data: np.ndarray, elem_bits: int, elems_per_beat: int) -> np.ndarray:
    """Inverse of `pack_beats`: beats (..., n, beat_bytes) to wire codes (..., n*elems_per_beat)."""
    data = np.asarray(data, dtype=np.uint8)
    bits = np.unpackbits(data, axis=-1, bitorder="little")[..., : elems_per_beat * elem_bits]
    lead = data.shape[:-2]
    n = data.shape[-2]
    bits = bits.reshape(*lead, n * elems_per_beat, elem_bits).astype(np.uint64)
    weights = np.uint64(1) << np.arange(elem_bits, dtype=np.uint64)
    return (bits * weights).sum(axis=-1, dtype=np.uint64)

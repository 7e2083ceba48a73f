"""The stream wire format, in numpy alone: what the simulator, the host side and the board driver
share (`hwgen.streams` is this, for QONNX datatypes). Datatypes are named as QONNX names them:
BIPOLAR (one bit, 1 = +1), BINARY, TERNARY ({-1, 0, +1} as two bits, two's complement), INTn
(two's complement), UINTn. Element `i` of a beat sits at
bits `[i*w, (i+1)*w)`, little-endian bytes, `ceil(width / 8)` bytes per beat.
"""

from __future__ import annotations

import numpy as np

from hwgen.errors import HwgenError


def dtype_bits(name: str) -> tuple[int, bool]:
    """(bit width, signed) of an integer datatype name."""
    if name in ("BIPOLAR", "BINARY"):
        return 1, name == "BIPOLAR"
    if name == "TERNARY":
        return 2, True
    for prefix, signed in (("UINT", False), ("INT", True)):
        if name.startswith(prefix) and name[len(prefix):].isdigit() and int(name[len(prefix):]) > 0:
            return int(name[len(prefix):]), signed
    raise HwgenError(f"not an integer datatype: {name!r}", where="stream datatype")


def value_range(name: str) -> tuple[int, int]:
    if name in ("BIPOLAR", "TERNARY"):
        return -1, 1
    bits, signed = dtype_bits(name)
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def first_outside(x: np.ndarray, name: str) -> list[int] | None:
    """The index of the first element of `x` that is not a value of integer datatype `name` (not a
    whole number, out of range, or 0 for BIPOLAR), or None."""
    lo, hi = value_range(name)
    v = np.asarray(x, dtype=np.float64)
    bad = (v != np.round(v)) | (v < lo) | (v > hi)
    if name == "BIPOLAR":
        bad |= v == 0
    return [int(i) for i in np.argwhere(bad)[0]] if bad.any() else None


def to_wire(values: np.ndarray, name: str) -> np.ndarray:
    """Encode integer values of datatype `name` as unsigned wire codes (uint64)."""
    v = np.asarray(values)
    if not np.all(np.equal(np.mod(v, 1), 0)):
        raise HwgenError(f"values are not integers, cannot encode as {name}")
    v = v.astype(np.int64)
    lo, hi = value_range(name)
    if v.size and not (v.min() >= lo and v.max() <= hi):
        raise HwgenError(f"values in [{v.min()}, {v.max()}] do not fit {name} [{lo}, {hi}]")
    if name == "BIPOLAR":
        if np.any(v == 0):
            raise HwgenError("values hold 0, which is not a BIPOLAR value (-1 or +1)")
        return (v > 0).astype(np.uint64)
    bits, _ = dtype_bits(name)
    return (v & ((1 << bits) - 1)).astype(np.uint64)


def from_wire(codes: np.ndarray, name: str) -> np.ndarray:
    """Decode unsigned wire codes back to the integer values of datatype `name` (int64)."""
    c = np.asarray(codes).astype(np.int64)
    if name == "BIPOLAR":
        return 2 * c - 1
    bits, signed = dtype_bits(name)
    if signed:
        return np.where(c >= (1 << (bits - 1)), c - (1 << bits), c)
    return c


def beat_bytes(width_bits: int) -> int:
    """Bytes that one beat of `width_bits` occupies in host memory and on a byte-wide AXI bus."""
    return (width_bits + 7) // 8


def pack_beats(codes: np.ndarray, elem_bits: int, elems_per_beat: int) -> np.ndarray:
    """Pack wire codes, shape (..., n*elems_per_beat), into beats of shape (..., n, beat_bytes)."""
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


def dma_bytes(width_bits: int) -> int:
    """Bytes per beat on an AXI DMA stream: tdata padded to 8 x 2^k bits, as the DMA accepts."""
    n = 1
    while n < beat_bytes(width_bits):
        n *= 2
    return n


def pad_beats(beats: np.ndarray, nbytes: int) -> np.ndarray:
    """Beats (..., n, b) zero-padded to (..., n, nbytes) bytes: the DMA's wider tdata."""
    pad = nbytes - beats.shape[-1]
    if pad < 0:
        raise HwgenError(f"beats of {beats.shape[-1]} bytes do not fit {nbytes}")
    return np.concatenate([beats, np.zeros((*beats.shape[:-1], pad), np.uint8)], axis=-1) if pad else beats

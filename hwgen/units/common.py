"""Small helpers shared by units: parameter checks (so every unit rejects bad parameters with the
same kind of message) and block-RAM arithmetic for resource estimates."""

from __future__ import annotations

import math

import numpy as np
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError


def check_dtype(dtype: object, name: str = "dtype") -> None:
    """Units stream integers only: the wire encoding of `hwgen.streams` is defined for those."""
    if not isinstance(dtype, BaseDataType) or not dtype.is_integer():
        raise HwgenError(f"{name} must be an integer qonnx DataType, got {dtype!r}", where=name)


def check_int(value: object, name: str, minimum: int = 1) -> None:
    """Raise `HwgenError` naming `name` unless `value` is an integer (not a bool) >= `minimum`."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise HwgenError(f"{name} must be an integer >= {minimum}, got {value!r}", where=name)


def bram18_count(width: int, depth: int) -> int:
    """18 Kb block RAMs for a `width` x `depth` memory, in the widest aspect ratio that fits
    (512x36, 1Kx18, 2Kx9, 4Kx4, 8Kx2, 16Kx1)."""
    for max_depth, max_width in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2)):
        if depth <= max_depth:
            return math.ceil(width / max_width)
    return width * math.ceil(depth / 16384)

"""Random test frames that are valid values of a stream's datatype (BIPOLAR is {-1, +1}, not the
[-1, 1] range that `min()`/`max()` suggest)."""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType

from hwgen.units.base import StreamSpec


def random_frames(spec: StreamSpec, n: int, seed: int = 0) -> np.ndarray:
    """`n` frames of uniformly random values of `spec.dtype`, shape (n, spec.elems_per_frame)."""
    rng = np.random.default_rng(seed)
    shape = (n, spec.elems_per_frame)
    if spec.dtype == DataType["BIPOLAR"]:
        return 2 * rng.integers(0, 2, shape, dtype=np.int64) - 1
    return rng.integers(int(spec.dtype.min()), int(spec.dtype.max()) + 1, shape, dtype=np.int64)

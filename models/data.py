"""Readers for the real data sets the tests and benchmarks use, read where they lie
(`../shared/data/` beside the project), never copied into it."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

#: ../shared/data relative to the project root
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format), gzipped or not."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist_test(data_dir: Path = SHARED_DATA) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test images as float32 (N, 1, 28, 28) pixels/255, and their labels."""
    images = read_idx(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    return (images / 255.0).astype(np.float32).reshape(-1, 1, 28, 28), labels.astype(np.int64)

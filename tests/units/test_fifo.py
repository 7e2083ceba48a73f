"""StreamingFifo: Verilator against the reference, bit-exact, with and without stalls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim import random_frames, simulate_unit
from hwgen.units.fifo import StreamingFifo

CASES = [
    # (dtype, elems_per_beat, beats_per_frame, depth)
    ("INT3", 5, 4, 2),  # 15-bit beats, the shallowest FIFO
    ("UINT8", 1, 6, 5),
    ("BIPOLAR", 70, 3, 200),  # > 64-bit beats in block RAM
]


@pytest.mark.parametrize(("dtype", "epb", "bpf", "depth"), CASES)
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_fifo_matches_reference(
    dtype: str, epb: int, bpf: int, depth: int, stall: float, verilator_cache: Path
) -> None:
    unit = StreamingFifo(DataType[dtype], epb, bpf, depth)
    frames = random_frames(unit.inputs[0], 8, seed=depth)
    out, res = simulate_unit(unit, frames, stall_prob=stall, seed=5, cache_dir=verilator_cache)
    np.testing.assert_array_equal(out, unit.reference(frames))
    if stall == 0.0:
        assert res.cycles_per_frame == unit.est_cycles() == bpf
        # One cycle through distributed RAM; block RAM adds its read register.
        extra = 2 if unit.ram_style == "block" else 1
        assert res.latency_cycles == bpf + extra
        assert res.total_cycles == 8 * bpf + extra


def test_fifo_estimates() -> None:
    small = StreamingFifo(DataType["INT3"], 5, 4, 32)
    assert small.ram_style == "distributed" and small.est_brams() == 0
    big = StreamingFifo(DataType["BIPOLAR"], 72, 4, 1024)
    assert big.ram_style == "block"
    assert big.est_brams() == 4  # 1023 x 72 bits: 1Kx18 aspect ratio, four wide
    assert big.est_luts() < small.est_luts() + 100


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        (dict(depth=1), "depth"),
        (dict(elems_per_beat=0), "elems_per_beat"),
        (dict(beats_per_frame=2.5), "beats_per_frame"),
        (dict(dtype="INT4"), "dtype"),
        (dict(dtype=DataType["FLOAT32"]), "dtype"),
    ],
)
def test_fifo_rejects_bad_parameters(kwargs: dict, bad: str) -> None:
    params = dict(dtype=DataType["INT4"], elems_per_beat=2, beats_per_frame=3, depth=4) | kwargs
    with pytest.raises(HwgenError, match=bad):
        StreamingFifo(**params)

"""DataWidthConverter: Verilator against the reference, bit-exact, with and without stalls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim import random_frames, simulate_unit
from hwgen.units.dwc import DataWidthConverter

CASES = [
    # (dtype, in_elems, out_elems, elems_per_frame)
    ("INT4", 3, 5, 30),  # widening, not a multiple
    ("UINT5", 8, 2, 16),  # narrowing by 4
    ("BIPOLAR", 2, 8, 16),  # widening by 4
    ("INT4", 5, 5, 10),  # nothing to do
    ("INT4", 20, 12, 60),  # narrowing, not a multiple, 80-bit input beats
    ("BIPOLAR", 13, 130, 130),  # 130-bit output beats
    ("INT8", 64, 1, 128),  # narrowing by 64: the shift-register form
    ("UINT3", 1, 16, 64),  # widening by 16: the slot form
    ("INT4", 6, 2, 24),  # narrowing by 3 in chunks of 2 elements
]


@pytest.mark.parametrize(("dtype", "i", "o", "epf"), CASES)
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_dwc_matches_reference(
    dtype: str, i: int, o: int, epf: int, stall: float, verilator_cache: Path
) -> None:
    unit = DataWidthConverter(DataType[dtype], i, o, epf)
    frames = random_frames(unit.inputs[0], 6, seed=i * o)
    out, res = simulate_unit(unit, frames, stall_prob=stall, seed=11, cache_dir=verilator_cache)
    np.testing.assert_array_equal(out, unit.reference(frames))
    if stall == 0.0:
        # Full rate on the wider side: one beat per cycle there.
        assert unit.est_cycles() == max(epf // i, epf // o)
        assert res.cycles_per_frame == unit.est_cycles()
        # A register stage when re-cutting, a wire when not.
        assert res.latency_cycles == unit.est_cycles() + (i != o)


def test_dwc_streams_frames_back_to_back(verilator_cache: Path) -> None:
    # 3 -> 5 over 30 elements: 10 input beats per frame; with no stalls, frame k's first input
    # beat is taken at cycle 10*k, i.e. the converter never refuses an input beat.
    unit = DataWidthConverter(DataType["INT4"], 3, 5, 30)
    _, res = simulate_unit(unit, random_frames(unit.inputs[0], 6), cache_dir=verilator_cache)
    np.testing.assert_array_equal(res.first_in_cycles, 10 * np.arange(6))


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        (dict(elems_per_frame=25), "elems_per_frame"),
        (dict(in_elems=0), "in_elems"),
        (dict(out_elems=-2), "out_elems"),
        (dict(dtype=None), "dtype"),
    ],
)
def test_dwc_rejects_bad_parameters(kwargs: dict, bad: str) -> None:
    params = dict(dtype=DataType["INT4"], in_elems=3, out_elems=5, elems_per_frame=30) | kwargs
    with pytest.raises(HwgenError, match=bad):
        DataWidthConverter(**params)


def test_dwc_estimates() -> None:
    assert DataWidthConverter(DataType["INT4"], 5, 5, 10).est_luts() == 0
    wide = DataWidthConverter(DataType["INT4"], 8, 2, 16).est_luts()
    narrow = DataWidthConverter(DataType["INT4"], 2, 8, 16).est_luts()
    assert wide > 0 and narrow > 0
    assert DataWidthConverter(DataType["INT4"], 3, 5, 30).est_brams() == 0

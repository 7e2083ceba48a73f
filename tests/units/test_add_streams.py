"""AddStreams: `alpha * a + beta * b`, exact, both inputs stalled independently."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim import random_frames
from hwgen.units.add_streams import AddStreams, sum_dtype


@pytest.mark.parametrize("a, b, alpha, beta, pe", [
    ("INT8", "INT8", 1, 1, 2),      # equal scales
    ("INT8", "UINT4", 4, 1, 3),     # scales two powers of two apart: a shift
    ("INT8", "INT8", 5, -3, 1),     # general integer coefficients
    ("BIPOLAR", "INT3", 2, 1, 6),
])
def test_add_matches_reference(a, b, alpha, beta, pe, check_unit):
    out = sum_dtype(DataType[a], DataType[b], alpha, beta)
    unit = AddStreams(6, pe, 3, DataType[a], DataType[b], alpha, beta, out)
    frames = (random_frames(unit.inputs[0], 7, seed=1), random_frames(unit.inputs[1], 7, seed=2))
    assert np.array_equal(unit.reference(*frames), alpha * frames[0] + beta * frames[1])
    check_unit(unit, frames)


@pytest.mark.parametrize("pe", [1, 2, 6])
def test_coefficients_per_channel(pe, check_unit):
    """A join whose operands' scales differ from channel to channel: each channel its own pair,
    each lane picking its channel's for the beat's fold."""
    alphas, betas = (3, -5, 1, 7, 2, 12), (1, 2, -4, 1, 9, 3)
    out = sum_dtype(DataType["INT10"], DataType["UINT8"], alphas, betas)
    unit = AddStreams(6, pe, 3, DataType["INT10"], DataType["UINT8"], 1, 1, out, alphas, betas)
    frames = (random_frames(unit.inputs[0], 5, seed=3), random_frames(unit.inputs[1], 5, seed=4))
    expected = np.tile(alphas, 3) * frames[0] + np.tile(betas, 3) * frames[1]
    assert np.array_equal(unit.reference(*frames), expected)
    check_unit(unit, frames)


@pytest.mark.parametrize("pe, groups", [(1, 6), (2, 3), (1, 2)])
def test_coefficients_per_channel_in_channel_groups(pe, groups, check_unit):
    """The same join channel-major (a group a fold) or in between: each lane its channel's pair
    in the order the beats come (`hwgen.streams`, Order)."""
    from hwgen.streams import from_channel_last

    alphas, betas = (3, -5, 1, 7, 2, 12), (1, 2, -4, 1, 9, 3)
    out = sum_dtype(DataType["INT10"], DataType["UINT8"], alphas, betas)
    unit = AddStreams(6, pe, 3, DataType["INT10"], DataType["UINT8"], 1, 1, out, alphas, betas, channel_groups=groups)
    frames = (random_frames(unit.inputs[0], 5, seed=3), random_frames(unit.inputs[1], 5, seed=4))
    coefficients = [from_channel_last(np.tile(c, (1, 3, 1)), groups) for c in (alphas, betas)]
    assert np.array_equal(unit.reference(*frames), coefficients[0] * frames[0] + coefficients[1] * frames[1])
    check_unit(unit, frames)


def test_sum_dtype_holds_every_sum():
    assert sum_dtype(DataType["INT8"], DataType["INT8"], 1, 1) == DataType["INT9"]
    assert sum_dtype(DataType["UINT8"], DataType["UINT8"], 1, 1) == DataType["UINT9"]
    assert sum_dtype(DataType["INT8"], DataType["INT8"], 4, 1) == DataType["INT11"]


@pytest.mark.parametrize("kwargs, name", [(dict(PE=4), "PE"), (dict(alpha=0), "alpha"),
                                          (dict(alphas=(1, 2), betas=(1, 2)), "one coefficient per channel"),
                                          (dict(alphas=(1,) * 6, betas=(1, 0, 1, 1, 1, 1)), "non-zero"),
                                          (dict(output_dtype=DataType["INT8"]), "output_dtype")])
def test_bad_parameters_are_named(kwargs, name):
    params = dict(channels=6, PE=2, pixels=2, a_dtype=DataType["INT8"], b_dtype=DataType["INT8"], alpha=1,
                  beta=1, output_dtype=DataType["INT9"]) | kwargs
    with pytest.raises(HwgenError, match=name):
        AddStreams(**params)

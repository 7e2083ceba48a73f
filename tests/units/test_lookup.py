"""ChannelwiseLookup: any elementwise function as a table, per channel or shared; exact in
Verilator with stalls, one beat per clock."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim import random_frames
from hwgen.units.lookup import ChannelwiseLookup


def rprelu_table(channels: int, seed: int) -> np.ndarray:
    """int8 -> int8 RPReLU-like rows: a shift, a slope that may be negative, a shift, rounded."""
    rng = np.random.default_rng(seed)
    x = np.arange(-128, 128)[None, :]
    b1, slope, b2 = rng.integers(-10, 10, (channels, 1)), rng.uniform(-0.25, 0.5, (channels, 1)), rng.integers(-5, 5, (channels, 1))
    y = x + b1
    y = np.where(y >= 0, y, slope * y) + b2
    return np.clip(np.rint(y), -128, 127).astype(np.int64)


@pytest.mark.parametrize("channels, pe, shared", [(8, 2, False), (6, 3, False), (4, 4, True), (5, 1, False)])
def test_lookup_matches_reference(channels, pe, shared, check_unit):
    table = rprelu_table(1 if shared else channels, seed=channels)
    unit = ChannelwiseLookup(channels, pe, 3, DataType["INT8"], DataType["INT8"], table)
    frames = random_frames(unit.inputs[0], 6, seed=pe)
    want = frames.reshape(6, 3, channels) + 128
    rows = np.zeros(channels, int) if shared else np.arange(channels)
    assert np.array_equal(unit.reference(frames), table[rows[None, None, :], want].reshape(6, -1))
    check_unit(unit, frames)


def test_lookup_from_bipolar_and_unsigned_inputs(check_unit):
    unit = ChannelwiseLookup(2, 2, 4, DataType["UINT3"], DataType["BIPOLAR"],
                             np.where(np.arange(8)[None, :] % 3 == 0, 1, -1).repeat(2, 0))
    check_unit(unit, random_frames(unit.inputs[0], 5, seed=1))
    unit = ChannelwiseLookup(3, 1, 2, DataType["BIPOLAR"], DataType["INT4"], np.array([[5, 0, -7]]))
    frames = random_frames(unit.inputs[0], 5, seed=2)
    assert np.array_equal(unit.reference(frames), np.where(frames > 0, -7, 5))
    check_unit(unit, frames)


def test_estimates_table_in_block_ram():
    unit = ChannelwiseLookup(64, 4, 1, DataType["INT8"], DataType["INT8"], rprelu_table(64, 0))
    # each lane: 16 channels x 256 entries = 4096 words of 8 bits, two RAMB18 as 4K x 4
    assert unit.est_brams() == 4 * 2
    assert unit.est_luts() < 200


@pytest.mark.parametrize("kwargs, name", [(dict(table=np.zeros((3, 256), int)), "table"),
                                          (dict(input_dtype=DataType["INT16"]), "at most"),
                                          (dict(table=np.full((4, 256), 300)), "table")])
def test_bad_parameters_are_named(kwargs, name):
    params = dict(channels=4, PE=2, pixels=1, input_dtype=DataType["INT8"], output_dtype=DataType["INT8"],
                  table=np.zeros((4, 256), int)) | kwargs
    with pytest.raises(HwgenError, match=name):
        ChannelwiseLookup(**params)

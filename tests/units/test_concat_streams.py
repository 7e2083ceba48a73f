"""ConcatStreams: channel concatenation of streams of different widths and datatypes."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim import random_frames
from hwgen.units.concat_streams import ConcatStreams, concat_dtype


@pytest.mark.parametrize("channels, dtypes, pe", [
    ((4, 2), ("INT8", "INT8"), 2),
    ((2, 6), ("UINT4", "INT11"), 2),      # BinaryDenseNet: 8-bit features next to a conv accumulator
    ((3, 3, 6), ("BIPOLAR", "INT2", "UINT2"), 3),
    ((4, 4), ("BIPOLAR", "BIPOLAR"), 4),  # stays one bit
])
def test_concat_matches_reference(channels, dtypes, pe, check_unit):
    dts = tuple(DataType[d] for d in dtypes)
    unit = ConcatStreams(channels, pe, 5, dts, concat_dtype(dts))
    frames = tuple(random_frames(spec, 6, seed=k) for k, spec in enumerate(unit.inputs))
    got = unit.reference(*frames).reshape(6, 5, sum(channels))
    start = 0
    for c, f in zip(channels, frames):
        assert np.array_equal(got[:, :, start:start + c], f.reshape(6, 5, c))
        start += c
    check_unit(unit, frames)


def test_concat_dtype():
    assert concat_dtype((DataType["INT8"], DataType["UINT8"])) == DataType["INT9"]
    assert concat_dtype((DataType["BIPOLAR"], DataType["BINARY"])) == DataType["INT2"]
    assert concat_dtype((DataType["BIPOLAR"], DataType["BIPOLAR"])) == DataType["BIPOLAR"]


def test_bad_parameters_are_named():
    with pytest.raises(HwgenError, match="channels"):
        ConcatStreams((3, 4), 2, 1, (DataType["INT8"], DataType["INT8"]), DataType["INT8"])
    with pytest.raises(HwgenError, match="cannot hold input 1"):
        ConcatStreams((2, 2), 2, 1, (DataType["INT4"], DataType["UINT8"]), DataType["INT8"])

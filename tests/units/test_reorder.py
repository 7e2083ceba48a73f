"""Reorder in Verilator: a frame from one channel grouping to another (channel-major to
channel-last and back, and in between), bit-exact with its reference with and without stalls, a
beat a clock; its parameters checked."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.streams import from_channel_last, to_channel_last
from hwgen.units.reorder import Reorder

INT8 = DataType["INT8"]


@pytest.mark.parametrize("pixels, channels, pe, dtype, groups_in, groups_out", [
    (6, 8, 2, INT8, 4, 1),  # a weight-stationary convolution's output back to channel-last
    (6, 8, 2, INT8, 1, 4),  # a shortcut into the channel-major order of the convolution beside it
    (5, 12, 1, DataType["UINT3"], 3, 4),  # between two groupings
    (4, 4, 4, DataType["BINARY"], 1, 1),  # one beat a pixel: the order kept, a frame late
])
def test_a_frame_comes_out_in_the_order_asked_for(pixels, channels, pe, dtype, groups_in, groups_out, check_unit):
    unit = Reorder(pixels, channels, pe, dtype, groups_in, groups_out)
    image = np.random.default_rng(channels).integers(int(dtype.min()), int(dtype.max()) + 1, (3, pixels, channels))
    frames = from_channel_last(image, groups_in)
    np.testing.assert_array_equal(to_channel_last(unit.reference(frames), pixels, channels, groups_out), image)
    check_unit(unit, frames)
    assert unit.est_cycles() == pixels * channels // pe and unit.held_fraction() == 2.0


def test_bad_parameters_are_named():
    with pytest.raises(HwgenError, match=r"Reorder: out_groups=3 must divide the channel folds \(4\)"):
        Reorder(6, 8, 2, INT8, 4, 3)
    with pytest.raises(HwgenError, match="Reorder: PE=3 does not divide channels=8"):
        Reorder(6, 8, 3, INT8)

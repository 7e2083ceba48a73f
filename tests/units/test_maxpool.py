"""MaxPool: the reference against a hand-worked case and torch's max_pool2d, parameter checks,
then the gateware in Verilator bit-exact against the reference (with and without stalls) at one
input beat per clock."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim import random_frames
from hwgen.units.maxpool import MaxPool

BIPOLAR, INT4 = DataType["BIPOLAR"], DataType["INT4"]


def test_reference_hand_example():
    # 1 channel, 4x5 image, 2x2 windows: the last column does not fill a window and is dropped.
    u = MaxPool(4, 5, 1, 2, 1, INT4)
    x = np.array([
        [1, -2, 3, 4, 7],
        [-5, 0, -8, 2, 7],
        [-1, -1, 6, 5, 7],
        [-3, -2, 5, 6, 7],
    ])
    assert u.reference(x.reshape(1, -1)).tolist() == [[1, 4, -1, 6]]


@pytest.mark.parametrize(
    "in_h, in_w, channels, kernel, dtype",
    [(6, 6, 4, 2, "INT4"), (7, 8, 3, 3, "BIPOLAR"), (5, 4, 2, 2, "UINT3"), (3, 3, 2, 1, "BINARY")],
)
def test_reference_matches_torch(in_h, in_w, channels, kernel, dtype):
    u = MaxPool(in_h, in_w, channels, kernel, 1, DataType[dtype])
    frames = random_frames(u.inputs[0], 3, seed=kernel)
    x = torch.tensor(frames, dtype=torch.float64).reshape(3, in_h, in_w, channels).permute(0, 3, 1, 2)
    want = F.max_pool2d(x, kernel).permute(0, 2, 3, 1).reshape(3, -1).numpy().astype(np.int64)
    np.testing.assert_array_equal(u.reference(frames), want)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(PE=3), "PE"),
        (dict(stride=1), "stride"),
        (dict(in_w=1), "in_w"),
        (dict(kernel=0), "kernel"),
        (dict(dtype=DataType["FLOAT32"]), "dtype"),
    ],
)
def test_bad_parameters_are_named(kwargs, name):
    params = dict(in_h=4, in_w=4, channels=4, kernel=2, PE=2, dtype=INT4) | kwargs
    with pytest.raises(HwgenError, match=name):
        MaxPool(**params)


def test_shapes_and_estimates():
    u = MaxPool(7, 6, 4, 2, 2, INT4)
    assert u.stride == 2
    assert (u.out_h, u.out_w) == (3, 3)
    assert u.inputs[0].beats_per_frame == u.est_cycles() == 7 * 6 * 2
    assert u.outputs[0].beats_per_frame == 3 * 3 * 2
    assert u.est_brams() == 0 and u.est_luts() > 0
    # One accumulator line of 112 columns x 256 channels, 1 bit each, 8 per beat: block RAM.
    assert MaxPool(224, 224, 256, 2, 8, BIPOLAR).est_brams() > 0


CASES = {
    # 2x2 INT4, two channels per beat, odd height (floor drops the last row)
    "2x2_int4_pe2": (7, 6, 4, 2, 2, "INT4"),
    # 3x3 BIPOLAR (OR of codes), all channels per beat, 7x8 (floor drops a row and two columns)
    "3x3_bipolar_pe_all": (7, 8, 3, 3, 3, "BIPOLAR"),
}


@pytest.mark.parametrize("case", CASES)
def test_maxpool_verilator_matches_reference(case, check_unit):
    in_h, in_w, channels, kernel, pe, dtype = CASES[case]
    unit = MaxPool(in_h, in_w, channels, kernel, pe, DataType[dtype])
    frames = random_frames(unit.inputs[0], 6, seed=len(case))
    check_unit(unit, frames, seed=7)

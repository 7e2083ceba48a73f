"""SumPool: the reference against a hand-worked case and torch, the output datatype,
parameter checks, then the gateware in Verilator bit-exact against the reference (with and
without stalls) at one input beat per clock."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim import random_frames
from hwgen.units.sum_pool import SumPool

BIPOLAR, INT4, UINT3 = DataType["BIPOLAR"], DataType["INT4"], DataType["UINT3"]


def test_reference_hand_example():
    # 2 pixels x 3 channels of BIPOLAR: per-channel sums.
    u = SumPool(1, 2, 3, 1, BIPOLAR)
    assert u.reference(np.array([[1, -1, 1, 1, -1, -1]])).tolist() == [[2, -2, 0]]


@pytest.mark.parametrize(
    "in_h, in_w, dtype, out",
    [
        (2, 2, "BIPOLAR", "INT4"),  # [-4, 4]
        (3, 3, "BIPOLAR", "INT5"),  # [-9, 9]
        (2, 3, "BINARY", "UINT3"),  # [0, 6]
        (4, 4, "UINT3", "UINT7"),  # [0, 112]
        (2, 2, "INT4", "INT6"),  # [-32, 28]
    ],
)
def test_output_dtype_is_smallest_holding_the_sum(in_h, in_w, dtype, out):
    assert SumPool(in_h, in_w, 2, 1, DataType[dtype]).output_dtype == DataType[out]


@pytest.mark.parametrize("dtype", ["BIPOLAR", "INT4"])
def test_reference_matches_torch_average_times_pixels(dtype):
    u = SumPool(3, 5, 4, 2, DataType[dtype])
    frames = random_frames(u.inputs[0], 3, seed=2)
    x = torch.tensor(frames, dtype=torch.float64).reshape(3, 3, 5, 4).permute(0, 3, 1, 2)
    want = (F.adaptive_avg_pool2d(x, 1) * 15).round().reshape(3, 4).numpy().astype(np.int64)
    np.testing.assert_array_equal(u.reference(frames), want)


@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(PE=3), "PE"), (dict(in_h=0), "in_h"), (dict(input_dtype=DataType["FLOAT32"]), "input_dtype")],
)
def test_bad_parameters_are_named(kwargs, name):
    params = dict(in_h=2, in_w=2, channels=4, PE=2, input_dtype=INT4) | kwargs
    with pytest.raises(HwgenError, match=name):
        SumPool(**params)


def test_shapes_and_estimates():
    u = SumPool(4, 4, 8, 2, BIPOLAR)
    assert u.inputs[0].beats_per_frame == u.est_cycles() == 16 * 4
    assert u.outputs[0].beats_per_frame == 4
    assert u.outputs[0].dtype == DataType["INT6"]
    assert u.est_brams() == 0 and u.est_luts() > 0


CASES = {
    # BIPOLAR sums, two channels per beat (accumulators in a 4-deep memory)
    "bipolar_pe2": (4, 3, 8, 2, "BIPOLAR"),
    # UINT3, all channels per beat: one accumulator word that follows itself every beat
    "uint3_pe_all": (3, 3, 3, 3, "UINT3"),
}


@pytest.mark.parametrize("case", CASES)
def test_global_pool_verilator_matches_reference(case, check_unit):
    in_h, in_w, channels, pe, dtype = CASES[case]
    unit = SumPool(in_h, in_w, channels, pe, DataType[dtype])
    frames = random_frames(unit.inputs[0], 6, seed=len(case))
    check_unit(unit, frames, seed=9)


@pytest.mark.parametrize("in_h, in_w, k, dtype", [(4, 4, 2, "INT8"), (5, 6, 2, "UINT4"), (6, 6, 3, "BIPOLAR")])
def test_windowed_reference_matches_torch_average_times_window(in_h, in_w, k, dtype):
    u = SumPool(in_h, in_w, 3, 1, DataType[dtype], kernel_h=k, kernel_w=k)
    frames = random_frames(u.inputs[0], 3, seed=k)
    x = torch.tensor(frames, dtype=torch.float64).reshape(3, in_h, in_w, 3).permute(0, 3, 1, 2)
    want = (F.avg_pool2d(x, k) * k * k).round().permute(0, 2, 3, 1).reshape(3, -1).numpy().astype(np.int64)
    np.testing.assert_array_equal(u.reference(frames), want)
    assert u.outputs[0].beats_per_frame == (in_h // k) * (in_w // k) * 3


@pytest.mark.parametrize("in_h, in_w, channels, pe, k, dtype", [(4, 4, 4, 2, 2, "INT8"), (6, 5, 3, 3, 2, "UINT4")])
def test_windowed_pool_verilator_matches_reference(in_h, in_w, channels, pe, k, dtype, check_unit):
    unit = SumPool(in_h, in_w, channels, pe, DataType[dtype], kernel_h=k, kernel_w=k)
    check_unit(unit, random_frames(unit.inputs[0], 5, seed=pe), seed=3)

"""WindowMax: the per-channel maximum of each window, against torch's max_pool2d over windows of
a padded image (3x3, stride 2, padding 1, the ResNet stem), and in Verilator with stalls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from qonnx.core.datatype import DataType

from hwgen.sim import random_frames
from hwgen.units.sliding_window import SlidingWindow
from hwgen.units.window_max import WindowMax


def stem_pool(h: int, c: int, simd: int, dtype: str) -> tuple[SlidingWindow, WindowMax]:
    dt = DataType[dtype]
    swg = SlidingWindow(h, h, c, 3, 3, 2, 2, 1, 1, 1, 1, simd, dt, dt, pad_value=int(dt.min()))
    return swg, WindowMax(c, simd, 9, swg.out_h * swg.out_w, dt)


@pytest.mark.parametrize("h, c, simd, dtype", [(8, 4, 2, "INT8"), (7, 3, 3, "UINT4"), (6, 2, 1, "BIPOLAR")])
def test_window_max_is_torch_max_pool(h, c, simd, dtype):
    swg, wmax = stem_pool(h, c, simd, dtype)
    x = random_frames(swg.inputs[0], 3, seed=h)
    got = wmax.reference(swg.reference(x))
    img = torch.tensor(x, dtype=torch.float64).reshape(3, h, h, c).permute(0, 3, 1, 2)
    want = F.max_pool2d(img, 3, 2, padding=1).permute(0, 2, 3, 1).reshape(3, -1).numpy().astype(np.int64)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("c, simd, positions, dtype", [(4, 2, 9, "INT8"), (6, 6, 4, "UINT3"), (2, 1, 9, "BIPOLAR")])
def test_window_max_matches_reference(c, simd, positions, dtype, check_unit):
    unit = WindowMax(c, simd, positions, 5, DataType[dtype])
    check_unit(unit, random_frames(unit.inputs[0], 6, seed=positions))

"""SlidingWindow: the reference against hand-worked windows and torch's unfold, parameter checks,
buffer sizing, then the gateware in Verilator bit-exact against the reference (with and without
stalls) at exactly `est_cycles` per frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim import random_frames
from hwgen.units.sliding_window import SlidingWindow

BIPOLAR, INT2, INT4, UINT3 = DataType["BIPOLAR"], DataType["INT2"], DataType["INT4"], DataType["UINT3"]


def make(in_hw, channels, kernel, stride=(1, 1), pads=(0, 0, 0, 0), SIMD=None, idt=INT4, odt=None, pad_value=0,
         MMV=1):
    """pads in ONNX order (top, left, bottom, right)."""
    return SlidingWindow(
        *in_hw, channels, *kernel, *stride, *pads, SIMD or channels, idt, odt or idt, pad_value, MMV
    )


def torch_windows(unit: SlidingWindow, frames: np.ndarray) -> np.ndarray:
    """The same windows from `torch.nn.functional.unfold` (after an explicit, possibly asymmetric
    `F.pad`), rearranged from unfold's (c, kh, kw) columns to the stream order (kh, kw, c)."""
    n, u = frames.shape[0], unit
    x = torch.tensor(frames, dtype=torch.float64).reshape(n, u.in_h, u.in_w, u.channels).permute(0, 3, 1, 2)
    x = F.pad(x, (u.pad_left, u.pad_right, u.pad_top, u.pad_bottom), value=float(u.pad_value))
    cols = F.unfold(x, (u.kernel_h, u.kernel_w), stride=(u.stride_h, u.stride_w))  # (n, c*kh*kw, L)
    cols = cols.reshape(n, u.channels, u.kernel_h, u.kernel_w, -1).permute(0, 4, 2, 3, 1)
    return cols.reshape(n, -1).numpy().astype(np.int64)


# ---- reference ---------------------------------------------------------------------------------


def test_reference_hand_example_2x2_windows():
    # 1 channel, 3x3 image 1..9, 2x2 kernel, stride 1: four windows in raster order.
    u = make((3, 3), 1, (2, 2), idt=UINT3, odt=INT4)
    x = np.array([[1, 2, 3, 4, 5, 6, 7, 7, 0]])
    assert u.reference(x).tolist() == [[1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 7, 5, 6, 7, 0]]


def test_reference_bipolar_padded_with_a_real_zero():
    # 2x2 BIPOLAR image of 2 channels, 3x3 kernel, pad 1: the pad is 0, not -1, in INT2.
    u = make((2, 2), 2, (3, 3), pads=(1, 1, 1, 1), idt=BIPOLAR, odt=INT2)
    px = [[1, -1], [-1, -1], [1, 1], [-1, 1]]  # pixels (0,0), (0,1), (1,0), (1,1)
    out = u.reference(np.array([sum(px, [])])).reshape(2, 2, 3, 3, 2)
    z = [0, 0]
    assert out[0, 0].tolist() == [[z, z, z], [z, px[0], px[1]], [z, px[2], px[3]]]
    assert out[1, 1].tolist() == [[px[0], px[1], z], [px[2], px[3], z], [z, z, z]]


def test_reference_channel_order_within_window():
    # Channels vary fastest, then kw, then kh: the MW order of the matrix-vector unit.
    u = make((2, 2), 3, (2, 2), idt=INT4)
    x = np.arange(12).reshape(1, 12) - 6
    np.testing.assert_array_equal(u.reference(x), x)


@pytest.mark.parametrize(
    "in_hw, channels, kernel, stride, pads",
    [
        ((6, 6), 4, (3, 3), (1, 1), (0, 0, 0, 0)),
        ((6, 6), 2, (3, 3), (1, 1), (1, 1, 1, 1)),
        ((7, 7), 3, (3, 3), (2, 2), (1, 1, 1, 1)),
        ((5, 7), 2, (3, 2), (2, 1), (1, 0, 0, 1)),  # non-square, asymmetric padding, floor
        ((6, 5), 2, (1, 1), (2, 2), (0, 0, 0, 0)),
    ],
)
def test_reference_matches_torch_unfold(in_hw, channels, kernel, stride, pads):
    u = make(in_hw, channels, kernel, stride, pads, idt=INT4, odt=DataType["INT5"], pad_value=-3)
    frames = random_frames(u.inputs[0], 3, seed=1)
    got = u.reference(frames)
    assert got.shape == (3, u.outputs[0].elems_per_frame)
    np.testing.assert_array_equal(got, torch_windows(u, frames))


# ---- parameters and estimates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(SIMD=3), "SIMD"),
        (dict(in_h=0), "in_h"),
        (dict(stride_w=0), "stride_w"),
        (dict(pad_left=-1), "pad_left"),
        (dict(pad_bottom=3), "pad_bottom"),  # a window wholly in the padding
        (dict(in_w=1, pad_left=0, pad_right=0), "kernel_w"),
        (dict(output_dtype=DataType["UINT2"]), "output_dtype"),  # cannot hold -1
        (dict(output_dtype=BIPOLAR, input_dtype=DataType["BINARY"]), "output_dtype"),
        (dict(pad_value=2), "pad_value"),
        (dict(input_dtype=DataType["FLOAT32"]), "input_dtype"),
    ],
)
def test_bad_parameters_are_named(kwargs, name):
    params = dict(
        in_h=6, in_w=6, channels=4, kernel_h=3, kernel_w=3, stride_h=1, stride_w=1, pad_top=1,
        pad_left=1, pad_bottom=1, pad_right=1, SIMD=2, input_dtype=BIPOLAR, output_dtype=INT2,
    )
    params.update(kwargs)
    with pytest.raises(HwgenError, match=name):
        SlidingWindow(**params)


def test_shapes_and_estimates():
    u = make((6, 6), 4, (3, 3), SIMD=2)
    assert (u.out_h, u.out_w) == (4, 4)
    assert u.inputs[0].beats_per_frame == 6 * 6 * 2
    assert u.outputs[0].beats_per_frame == 4 * 4 * 9 * 2
    assert u.est_cycles() == 288  # output-bound
    assert make((6, 5), 2, (1, 1), stride=(2, 2)).est_cycles() == 30  # input-bound: 30 pixels in, 9 out
    # The frame's last window starts at pixel (3, 3) = beat 42; the next frame's first window
    # ends at its pixel (2, 2) = beat 72 + 29: the buffer holds beats 42..101, and one more for the
    # writer's registered view of where the reader stands.
    assert u.buffer_beats == 60 + 1
    assert u.est_brams() == 0 and u.est_luts() > 0
    # A CIFAR-sized layer, one channel per beat: the buffer needs block RAM.
    big = make((32, 32), 64, (3, 3), SIMD=1, idt=BIPOLAR, odt=BIPOLAR, pad_value=1)
    assert big.est_brams() > 0


# ---- gateware ----------------------------------------------------------------------------------

CASES = {
    # 3x3 stride 1 no padding, SIMD < channels, UINT3 re-encoded as INT4
    "3x3_s1_p0_simd2": dict(in_hw=(6, 6), channels=4, kernel=(3, 3), SIMD=2, idt=UINT3, odt=INT4),
    # 3x3 pad 1, BIPOLAR -> INT2 with a real 0 pad, SIMD == channels
    "3x3_p1_bipolar": dict(in_hw=(6, 6), channels=4, kernel=(3, 3), pads=(1, 1, 1, 1), idt=BIPOLAR, odt=INT2),
    # 3x3 stride 2 pad 1, one channel per beat
    "3x3_s2_p1": dict(in_hw=(7, 7), channels=2, kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1), SIMD=1, idt=INT2),
    # non-square image and kernel, mixed strides, asymmetric padding, pad value -1
    "5x7_k3x2_asym": dict(
        in_hw=(5, 7), channels=2, kernel=(3, 2), stride=(2, 1), pads=(1, 0, 0, 1), idt=INT4, pad_value=-1
    ),
    # 1x1 stride 2 (input-bound; the last row is dropped by floor)
    "1x1_s2": dict(in_hw=(5, 6), channels=4, kernel=(1, 1), stride=(2, 2), SIMD=2, idt=INT4),
}


@pytest.mark.parametrize("case", CASES)
def test_sliding_window_verilator_matches_reference(case, check_unit):
    unit = make(**CASES[case])
    frames = random_frames(unit.inputs[0], 6, seed=len(case))
    check_unit(unit, frames, seed=5)


# ---- several pieces of a window per beat (MMV) -------------------------------------------------

MMV_CASES = {
    # CNV's first layer in small: 3 channels, one pixel per piece; a kernel row per beat
    "row_per_beat": dict(in_hw=(6, 6), channels=3, kernel=(3, 3), idt=INT4, MMV=3),
    # the whole 3x3 window in one beat, padded, BIPOLAR -> INT2 with a real 0
    "window_per_beat_padded": dict(in_hw=(6, 6), channels=2, kernel=(3, 3), pads=(1, 1, 1, 1), idt=BIPOLAR,
                                   odt=INT2, MMV=9),
    # two channel folds of a pixel per beat (SIMD 1 of 4 channels), stride 2, padding
    "folds_per_beat_s2": dict(in_hw=(7, 7), channels=4, kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1), SIMD=1,
                              idt=INT2, MMV=2),
    # non-square kernel, asymmetric padding: one kernel row of 2 pixels x 2 folds, pad value -1
    "k3x2_asym_rows": dict(in_hw=(5, 7), channels=2, kernel=(3, 2), stride=(2, 1), pads=(1, 0, 0, 1), SIMD=1,
                           idt=INT4, pad_value=-1, MMV=4),
}


def test_mmv_choices_and_shapes():
    u = make((6, 6), 4, (3, 3), SIMD=2)  # 2 folds per pixel, 6 per kernel row, 18 per window
    assert u.mmv_choices() == [1, 2, 6, 18]
    wide = make((6, 6), 4, (3, 3), SIMD=2, MMV=6)
    assert wide.outputs[0].elems_per_beat == 12
    assert wide.outputs[0].beats_per_frame == 4 * 4 * 3
    assert wide.est_cycles() == 72  # the 72 input beats, no longer the 288 pieces
    assert {"SIMD": 4, "MMV": 9} in u.folding_space() and {"SIMD": 4, "MMV": 2} not in u.folding_space()
    with pytest.raises(HwgenError, match="MMV=3 must divide"):
        make((6, 6), 4, (3, 3), SIMD=2, MMV=3)


@pytest.mark.parametrize("case", MMV_CASES)
def test_mmv_reference_is_the_same_windows(case):
    params = dict(MMV_CASES[case])
    wide = make(**params)
    params.pop("MMV")
    narrow = make(**params)
    frames = random_frames(wide.inputs[0], 2, seed=3)
    np.testing.assert_array_equal(wide.reference(frames), narrow.reference(frames))


@pytest.mark.parametrize("case", MMV_CASES)
def test_mmv_verilator_matches_reference(case, check_unit):
    unit = make(**MMV_CASES[case])
    frames = random_frames(unit.inputs[0], 6, seed=len(case))
    check_unit(unit, frames, seed=5)

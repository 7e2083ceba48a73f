"""LabelSelect: top-k reference (ONNX TopK order), parameter checks, then the gateware in Verilator
bit-exact against the reference, with and without stalls."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.units.label_select import LabelSelect, label_dtype


def test_reference_largest_first_ties_to_lower_index():
    u = LabelSelect(6, 2, 4, DataType["INT4"])
    x = np.array([[3, -1, 7, 3, 7, 0], [0, 0, 0, 0, 0, 0]])
    assert u.reference(x).tolist() == [[2, 4, 0, 3], [0, 1, 2, 3]]


def test_output_dtype():
    assert label_dtype(10) == DataType["UINT4"]
    assert label_dtype(16) == DataType["UINT4"]
    assert label_dtype(2) == DataType["BINARY"]
    assert LabelSelect(10, 5, 3, DataType["UINT8"]).outputs[0].beats_per_frame == 3


def test_est_cycles_overlap_input_and_output():
    assert LabelSelect(10, 2, 1, DataType["UINT8"]).est_cycles() == 5
    assert LabelSelect(10, 10, 3, DataType["UINT8"]).est_cycles() == 3


@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(PE=3), "PE"), (dict(k=11), "k"), (dict(labels=0), "labels"),
     (dict(input_dtype=DataType["FLOAT32"]), "input_dtype")],
)
def test_bad_parameters_are_named(kwargs, name):
    params = dict(labels=10, PE=2, k=1, input_dtype=DataType["INT8"])
    params.update(kwargs)
    with pytest.raises(HwgenError, match=name):
        LabelSelect(**params)


CASES = {
    # input-bound: 5 beats per frame, k = 3
    "labels10_pe2_k3": (10, 2, 3, DataType["INT4"]),
    # output-bound: 2 beats in, 4 indices out; 2-bit values, so many ties
    "labels6_pe3_k4": (6, 3, 4, DataType["UINT2"]),
}


@pytest.mark.parametrize("case", CASES)
def test_label_select_verilator_matches_reference(case, check_unit):
    labels, pe, k, idt = CASES[case]
    unit = LabelSelect(labels, pe, k, idt)
    rng = np.random.default_rng(sum(map(ord, case)))
    frames = rng.integers(int(idt.min()), int(idt.max()) + 1, size=(10, labels))
    check_unit(unit, frames, seed=5)

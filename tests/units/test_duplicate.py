"""DuplicateStreams: every output gets every beat exactly once, whichever output stalls."""

from __future__ import annotations

import pytest
from qonnx.core.datatype import DataType

from hwgen.errors import HwgenError
from hwgen.sim import random_frames
from hwgen.units.duplicate import DuplicateStreams


@pytest.mark.parametrize("dtype,epb,bpf,copies", [("INT8", 4, 6, 2), ("BIPOLAR", 9, 3, 3)])
def test_duplicate_matches_reference(check_unit, dtype, epb, bpf, copies):
    unit = DuplicateStreams(DataType[dtype], epb, bpf, copies)
    check_unit(unit, random_frames(unit.inputs[0], 12, seed=copies))


def test_duplicate_needs_two_copies():
    with pytest.raises(HwgenError, match="copies"):
        DuplicateStreams(DataType["INT8"], 1, 1, 1)

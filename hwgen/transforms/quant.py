"""What a QONNX quantizer node (`Quant`, `BipolarQuant`) produces: its attributes, its integer
levels and their datatype; shared by the rewrites that take quantizers apart."""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import get_by_name

from hwgen.transforms.graph import const, int_dtype_for_range


def quant_attrs(node) -> tuple[int, int, str]:
    signed = get_by_name(node.attribute, "signed")
    narrow = get_by_name(node.attribute, "narrow")
    mode = get_by_name(node.attribute, "rounding_mode")
    return (1 if signed is None else signed.i, 0 if narrow is None else narrow.i,
            "ROUND" if mode is None else mode.s.decode())


def quant_levels(model: ModelWrapper, q) -> tuple[int, int]:
    """Smallest and largest integer level an activation quantizer with scale 1 can output."""
    if q.op_type == "BipolarQuant":
        return -1, 1
    zp = float(const(model, q.input[2]).reshape(-1)[0])
    bits = int(const(model, q.input[3]).reshape(-1)[0])
    signed, narrow, _ = quant_attrs(q)
    if signed:
        lo, hi = -(2 ** (bits - 1)) + narrow, 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1 - narrow
    return int(lo - zp), int(hi - zp)


def quant_output_dtype(model: ModelWrapper, q):
    if q.op_type == "BipolarQuant":
        return DataType["BIPOLAR"]
    lo, hi = quant_levels(model, q)
    return int_dtype_for_range(lo, hi)


def dtype_for_levels(values) -> DataType | None:
    """The integer datatype of a set of output values, or None if they are not all integers."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(values == np.round(values)):
        return None
    if set(values.tolist()) <= {-1.0, 1.0} and len(values) == 2:
        return DataType["BIPOLAR"]
    return int_dtype_for_range(values.min(), values.max())

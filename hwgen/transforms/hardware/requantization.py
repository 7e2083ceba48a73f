"""Which form each requantization between units takes, and why a table or a threshold set stays.

`InferThresholding` and `InferLookup` turn a function of one integer per channel into arithmetic
(`Requantize`: one or two affine pieces, `hwgen.units.piecewise`) wherever such a form reproduces
it on every input the unit can see; otherwise into a threshold search or a table, and they note
why here (graph metadata, read by the report).
"""

from __future__ import annotations

import json

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.ops import unit_of
from hwgen.transforms.graph import HWGEN_DOMAIN, add_int_const, fresh_node_name, make_node
from hwgen.units.mvu import accumulator_bounds
from hwgen.units.piecewise import Piecewise
from hwgen.units.requantize import coefficients_of

#: metadata key: {node name: why it is not arithmetic}
KEPT_KEY = "hwgen_requantization_kept"


def note_kept(model: ModelWrapper, node_name: str, reason: str) -> None:
    kept = kept_reasons(model)
    kept[node_name] = reason
    model.set_metadata_prop(KEPT_KEY, json.dumps(kept))


def kept_reasons(model: ModelWrapper) -> dict[str, str]:
    value = model.get_metadata_prop(KEPT_KEY)
    return json.loads(value) if value else {}


def reachable_bounds(model: ModelWrapper, tensor: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the least and most value `tensor` can take: a layer's accumulator within what
    its weights reach (a BatchNorm's thresholds below that are all "always"), anything else
    within its datatype."""
    producer = model.find_producer(tensor)
    if producer is not None and producer.op_type == "MVU":
        unit = unit_of(model, producer)
        if unit.thresholds is None:
            return accumulator_bounds(unit.input_dtype, unit.weight_dtype, unit.weights)
    dt = model.get_tensor_datatype(tensor)
    return np.full(channels, int(dt.min()), np.int64), np.full(channels, int(dt.max()), np.int64)


def requantize_node(model: ModelWrapper, form: Piecewise, inp: str, out: str, channels: int, pixels: int,
                    input_dtype: str, output_dtype: str, rows: np.ndarray | None = None,
                    table: np.ndarray | None = None):
    """The `Requantize` node of a fitted form (a form of one row serves every channel); `rows` and
    `table`: the channels without a form and the table rows they read."""
    coefficients = coefficients_of(form, rows)
    if coefficients.shape[0] == 1 and channels > 1:
        coefficients = np.repeat(coefficients, channels, axis=0)
    arrays = [add_int_const(model, coefficients)] + ([add_int_const(model, table)] if table is not None else [])
    return make_node("Requantize", [inp, *arrays], [out], domain=HWGEN_DOMAIN,
                     name=fresh_node_name(model, "Requantize"), channels=channels, PE=1, pixels=pixels,
                     input_dtype=input_dtype, output_dtype=output_dtype, shift=form.shift)


def requantization_counts(model: ModelWrapper) -> dict:
    """The report's `requantization`: how many units requantize by arithmetic, by thresholds (a
    standalone unit, or fused into a layer) and by a table, and why each table or large threshold
    set that stays could not be arithmetic."""
    kinds = {"arithmetic": 0, "thresholds": 0, "table": 0}
    for node in model.graph.node:
        if node.op_type == "Requantize":
            kinds["arithmetic"] += 1
        elif node.op_type == "Thresholding" or (node.op_type == "MVU" and len(node.input) > 2 and node.input[2]):
            kinds["thresholds"] += 1
        elif node.op_type == "ChannelwiseLookup":
            kinds["table"] += 1
    return {**kinds, "kept": kept_reasons(model)}

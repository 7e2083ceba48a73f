"""InferMVU.

    XnorPopcountMatMul(x, W) [-> MultiThreshold(T)]   =>  MVU(x, W[, T])   (XNOR mode)
    MatMul(x: int, W: int)  [-> MultiThreshold(T)]    =>  MVU(x, W[, T])

The thresholds are fused into the unit when the MultiThreshold is the accumulator's only reader and has
fewer than `BINARY_SEARCH_MIN_STEPS` steps (more go to a binary-search `Thresholding` after it);
without one the MVU streams out its exact integer accumulator.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError
from hwgen.transforms.graph import HWGEN_DOMAIN, add_const, const, fresh_node_name, insert_after, make_node, single_consumer
from hwgen.units.mvu import accumulator_dtype
from hwgen.units.thresholding import BINARY_SEARCH_MIN_STEPS


def threshold_output(model: ModelWrapper, mt) -> tuple[DataType, int]:
    """(output datatype, out_bias) of a MultiThreshold in hardware terms."""
    op = getCustomOp(mt)
    scale, bias = op.get_nodeattr("out_scale"), op.get_nodeattr("out_bias")
    dtype = model.get_tensor_datatype(mt.output[0])
    if dtype == DataType["BIPOLAR"] and (scale, bias) == (2.0, -1.0):
        return dtype, -1
    if scale != 1.0 or bias != round(bias) or not dtype.is_integer():
        raise HwgenError(f"thresholds with out_scale={scale}, out_bias={bias} ({dtype.name}) have no "
                         "integer hardware form", where=f"node {mt.name}")
    return dtype, int(bias)


def fusable(model: ModelWrapper, mt) -> bool:
    """Whether a MultiThreshold is fused into the layer before it: only few thresholds, which the
    MVU compares all at once; many (an 8-bit requantization) go to a binary-search Thresholding."""
    return mt is not None and mt.op_type == "MultiThreshold" \
        and const(model, mt.input[1]).shape[1] < BINARY_SEARCH_MIN_STEPS


def threshold_rows(model: ModelWrapper, mt, channels: int) -> str:
    """The MultiThreshold's thresholds with one row per channel (a shared row is repeated)."""
    thresholds = const(model, mt.input[1])
    if thresholds.shape[0] == channels:
        return mt.input[1]
    return add_const(model, np.repeat(thresholds, channels, axis=0))


class InferMVU(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for node in model.graph.node:
            if node.op_type not in ("MatMul", "XnorPopcountMatMul") or const(model, node.input[1]) is None:
                continue
            mt = single_consumer(model, node.output[0])
            matches.append((node, mt if fusable(model, mt) else None))
        for (mm, mt) in matches:
            w = const(model, mm.input[1])
            idt = model.get_tensor_datatype(mm.input[0])
            wdt = model.get_tensor_datatype(mm.input[1])
            if mm.op_type == "XnorPopcountMatMul":
                idt = wdt = DataType["BINARY"]
            if not idt.is_integer() or not wdt.is_integer():
                raise HwgenError(f"MatMul on {idt.name} x {wdt.name} has no integer hardware form",
                                 where=f"node {mm.name}")
            mw, mh = w.shape
            inputs = [mm.input[0], mm.input[1]]
            if mt is not None:
                odt, bias = threshold_output(model, mt)
                inputs.append(threshold_rows(model, mt, mh))
                out = mt.output[0]
            else:
                odt, bias = accumulator_dtype(idt, wdt, np.rint(w).astype(np.int64)), 0
                out = mm.output[0]
            node = make_node("MVU", inputs, [out], domain=HWGEN_DOMAIN, name=fresh_node_name(model, "MVU"),
                             MW=mw, MH=mh, PE=1, SIMD=1, input_dtype=idt.name, weight_dtype=wdt.name,
                             output_dtype=odt.name, out_bias=bias)
            insert_after(model, mt if mt is not None else mm, [node])
            model.graph.node.remove(mm)
            if mt is not None:
                model.graph.node.remove(mt)
            model.set_tensor_datatype(out, odt)
        return model, bool(matches)

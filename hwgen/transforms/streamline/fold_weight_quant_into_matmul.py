"""FoldWeightQuantIntoMatMul.

    MatMul(x, Quant(W, s, z, b))    =>  MatMul(x, Wint) -> Mul(s)
    MatMul(x, BipolarQuant(W, s))   =>  MatMul(x, Wbip) -> Mul(s)
    Conv(x, Quant(W, s, z, b))      =>  Conv(x, Wint)   -> Mul(s)

`Wint` holds the integer levels of the quantized weights (annotated INTn / UINTn / BIPOLAR), so the
MatMul becomes an integer dot product; the scale, scalar or one per output column, moves after it
where streamlining folds it into the next thresholds or hands it to the host. A scale that is not a
power of two is recorded (`hwgen.transforms.float_ties`): the model rounded inside its dot product.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.quant import quant
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError
from hwgen.transforms.float_ties import is_power_of_two, note_inexact_scale
from hwgen.transforms.graph import add_const, const, insert_after, int_dtype_for_range, make_node, new_tensor
from hwgen.transforms.quant import quant_attrs


def integer_weights(model: ModelWrapper, qnode) -> tuple[np.ndarray, np.ndarray, object]:
    """(integer levels, scale, datatype) of a weight quantizer with constant inputs."""
    w = const(model, qnode.input[0])
    scale = const(model, qnode.input[1]).astype(np.float32)
    if np.any(scale <= 0):
        raise HwgenError("weight scale must be positive", where=f"node {qnode.name}")
    if qnode.op_type == "BipolarQuant":
        return np.where(w >= 0, 1.0, -1.0).astype(np.float32), scale, DataType["BIPOLAR"]
    zp = const(model, qnode.input[2])
    bits = const(model, qnode.input[3])
    if zp is None or bits is None or np.any(zp != 0):
        raise HwgenError("weight quantizers need a constant zero point of 0", where=f"node {qnode.name}")
    signed, narrow, mode = quant_attrs(qnode)
    q = quant(w, scale, zp, bits, signed, narrow, mode)
    levels = np.rint(q / scale).astype(np.float32)
    return levels, scale, int_dtype_for_range(levels.min(), levels.max()) if levels.size else DataType["INT2"]


def _output_channel_axis(node) -> int:
    """Axis of the weight tensor that indexes output channels: MatMul (MW, MH) -> 1, Conv
    (C_out, C_in, kh, kw) -> 0."""
    return 1 if node.op_type == "MatMul" else 0


class FoldWeightQuantIntoMatMul(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for mm in model.graph.node:
            if mm.op_type not in ("MatMul", "Conv"):
                continue
            q = model.find_producer(mm.input[1])
            if q is not None and q.op_type in ("Quant", "BipolarQuant") and const(model, q.input[0]) is not None:
                matches.append((mm, q))
        for mm, q in matches:
            levels, scale, dtype = integer_weights(model, q)
            if levels.ndim != (2 if mm.op_type == "MatMul" else 4):
                raise HwgenError(f"weights of shape {list(levels.shape)} do not fit a {mm.op_type}", where=f"node {mm.name}")
            axis = _output_channel_axis(mm)
            channels = levels.shape[axis]
            if scale.size != 1 and (scale.size != channels or scale.shape[axis] != channels):
                raise HwgenError("weight scales must be per tensor or per output channel", where=f"node {q.name}")
            w_name = add_const(model, levels, dtype)
            out = mm.output[0]
            mm.input[1] = w_name
            if np.all(scale == 1.0):
                model.set_tensor_datatype(out, DataType["FLOAT32"])
            else:
                acc = new_tensor(model, out)
                mm.output[0] = acc
                rank = len(model.get_tensor_shape(out))
                shape = [1, channels] + [1] * (rank - 2) if mm.op_type == "Conv" else [1, channels]
                s = add_const(model, scale.reshape(shape) if scale.size != 1 else scale.reshape(()))
                insert_after(model, mm, [make_node("Mul", [acc, s], [out], name=f"{mm.name}_wscale")])
                if not is_power_of_two(scale):
                    note_inexact_scale(model, f"{mm.name}_wscale")
            if not model.find_consumers(q.output[0]):
                model.graph.node.remove(q)
        return model, bool(matches)

"""ConvertGemmToMatMul.

    Gemm(x, B, C; transB=1)              =>  MatMul(x, B^T) -> Add(C)
    Gemm(x, Quant(W, s), C; transB=1)    =>  MatMul(x, Quant(W^T, s^T)) -> Add(C)

The weight quantizer is kept (its constant inputs are transposed instead of inserting a Transpose
node) so that `FoldWeightQuantIntoMatMul` still sees integer weights and their scale.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from hwgen.errors import HwgenError
from hwgen.transforms.graph import add_const, const, insert_after, make_node, new_tensor

_WEIGHT_QUANTS = ("Quant", "BipolarQuant")


def _attr(node, name: str, default):
    a = get_by_name(node.attribute, name)
    return default if a is None else (a.f if a.type == 1 else a.i)


class ConvertGemmToMatMul(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node if n.op_type == "Gemm"]
        for gemm in matches:
            if _attr(gemm, "transA", 0) or _attr(gemm, "alpha", 1.0) != 1.0:
                raise HwgenError("Gemm with transA or alpha != 1 is not supported", where=f"node {gemm.name}")
            if len(gemm.input) > 2 and gemm.input[2] and _attr(gemm, "beta", 1.0) != 1.0:
                raise HwgenError("Gemm with beta != 1 is not supported", where=f"node {gemm.name}")
            x, b = gemm.input[0], gemm.input[1]
            if _attr(gemm, "transB", 0):
                self._transpose_weight(model, gemm, b)
            out = gemm.output[0]
            bias = gemm.input[2] if len(gemm.input) > 2 and gemm.input[2] else None
            mm_out = new_tensor(model, out) if bias else out
            new = [make_node("MatMul", [x, b], [mm_out], name=f"{gemm.name}_matmul")]
            if bias:
                new.append(make_node("Add", [mm_out, bias], [out], name=f"{gemm.name}_bias"))
            insert_after(model, gemm, new)
            model.graph.node.remove(gemm)
        return model, bool(matches)

    @staticmethod
    def _transpose_weight(model: ModelWrapper, gemm, b: str) -> None:
        value = const(model, b)
        if value is not None:
            model.set_initializer(b, value.T.copy())
            return
        quant = model.find_producer(b)
        if quant is None or quant.op_type not in _WEIGHT_QUANTS or const(model, quant.input[0]) is None:
            raise HwgenError("weights must be a constant or a quantized constant", where=f"node {gemm.name}")
        if len(model.find_consumers(quant.input[0]) or []) > 1:
            raise HwgenError("weights shared between layers are not supported", where=f"node {gemm.name}")
        for i, name in enumerate(quant.input[:3] if quant.op_type == "Quant" else quant.input[:2]):
            v = const(model, name)
            if v is not None and v.ndim == 2:
                # scale / zero point tensors may be shared with other quantizers: write a copy
                new_name = name if i == 0 else add_const(model, v.T.copy())
                if i == 0:
                    model.set_initializer(name, v.T.copy())
                quant.input[i] = new_name
        model.set_tensor_shape(b, list(model.get_tensor_shape(b))[::-1])

"""ConvertBipolarMatMulToXnorPopcount.

    MatMul(x: BIPOLAR, W: BIPOLAR)
      =>  Add(x, 1) -> Mul(0.5) -> XnorPopcountMatMul(., (W+1)/2) -> Mul(2) -> Add(-MW)

A ±1 dot product over MW terms equals 2*popcount(XNOR) - MW. The hardware keeps only the popcount;
the exact affine `2p - MW` joins the elementwise chain that becomes the next thresholds, and the
{-1,+1} -> {0,1} re-encoding of the input folds into the producing MultiThreshold (or the host).
"""

from __future__ import annotations

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import QONNX_DOMAIN, add_const, const, insert_after, make_node, new_tensor

BIPOLAR = DataType["BIPOLAR"]


class ConvertBipolarMatMulToXnorPopcount(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [
            mm for mm in model.graph.node
            if mm.op_type == "MatMul"
            and const(model, mm.input[1]) is not None
            and model.get_tensor_datatype(mm.input[0]) == BIPOLAR
            and model.get_tensor_datatype(mm.input[1]) == BIPOLAR
        ]
        for mm in matches:
            x, w = mm.input
            weights = const(model, w)
            mw = weights.shape[0]
            shifted = new_tensor(model, x)
            binary_x = new_tensor(model, x, dtype=DataType["BINARY"])
            popcount = new_tensor(model, mm.output[0], dtype=DataType[f"UINT{mw.bit_length()}"])
            doubled = new_tensor(model, mm.output[0])
            w01 = add_const(model, (weights + 1) / 2, DataType["BINARY"])
            out = mm.output[0]
            nodes = [
                make_node("Add", [x, add_const(model, 1.0)], [shifted], name=f"{mm.name}_tobin_add"),
                make_node("Mul", [shifted, add_const(model, 0.5)], [binary_x], name=f"{mm.name}_tobin_mul"),
                make_node("XnorPopcountMatMul", [binary_x, w01], [popcount], domain=QONNX_DOMAIN,
                          name=f"{mm.name}_xnor"),
                make_node("Mul", [popcount, add_const(model, 2.0)], [doubled], name=f"{mm.name}_pc2"),
                make_node("Add", [doubled, add_const(model, float(-mw))], [out], name=f"{mm.name}_pcoffset"),
            ]
            insert_after(model, mm, nodes)
            model.graph.node.remove(mm)
            model.set_tensor_datatype(out, DataType["FLOAT32"])
        return model, bool(matches)

"""AbsorbAffineIntoMultiThreshold.

    MultiThreshold(x; out_scale=a, out_bias=b) -> Add(c)   =>  MultiThreshold(x; a, b + c)
    MultiThreshold(x; out_scale=a, out_bias=b) -> Mul(m)   =>  MultiThreshold(x; a*m, b*m)

for scalar constants c and m. This turns a bipolar MultiThreshold (a=2, b=-1) followed by the
{-1,+1} -> {0,1} re-encoding of `ConvertBipolarMatMulToXnorPopcount` into a binary one (a=1, b=0),
so the XNOR unit reads the threshold bit directly. A Reshape / Flatten between the two is looked
through (a scalar affine commutes with it).
"""

from __future__ import annotations

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import const, is_scalar, single_consumer


class AbsorbAffineIntoMultiThreshold(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for mt in model.graph.node:
            if mt.op_type != "MultiThreshold":
                continue
            nxt = single_consumer(model, mt.output[0])
            if nxt is not None and nxt.op_type in ("Reshape", "Flatten"):
                after = single_consumer(model, nxt.output[0])
                if after is not None and after.op_type in ("Add", "Mul") and is_scalar(const(model, after.input[1])):
                    # a scalar affine commutes with a reshape: bring it next to the thresholds
                    nxt.output[0], after.input[0], after.output[0], nxt.input[0] = (
                        after.output[0], nxt.input[0], nxt.input[0] + "_affine", nxt.input[0] + "_affine")
                    model.set_tensor_shape(after.output[0], model.get_tensor_shape(after.input[0]))
                    nxt = after
            if nxt is not None and nxt.op_type in ("Add", "Mul") and is_scalar(const(model, nxt.input[1])):
                matches.append((mt, nxt))
        for mt, nxt in matches:
            op = getCustomOp(mt)
            a, b = op.get_nodeattr("out_scale"), op.get_nodeattr("out_bias")
            c = float(const(model, nxt.input[1]).reshape(-1)[0])
            if nxt.op_type == "Add":
                b = b + c
            else:
                a, b = a * c, b * c
            op.set_nodeattr("out_scale", float(a))
            op.set_nodeattr("out_bias", float(b))
            out_dtype = model.get_tensor_datatype(nxt.output[0])
            mt.output[0] = nxt.output[0]
            model.graph.node.remove(nxt)
            levels = int(model.get_initializer(mt.input[1]).shape[1])
            values = [a * k + b for k in range(levels + 1)]
            from hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds import dtype_for_levels
            dtype = dtype_for_levels(values)
            op.set_nodeattr("out_dtype", dtype.name if dtype is not None else "FLOAT32")
            model.set_tensor_datatype(mt.output[0], dtype if dtype is not None else DataType["FLOAT32"])
        return model, bool(matches)

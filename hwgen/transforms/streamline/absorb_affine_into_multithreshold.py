"""AbsorbAffineIntoMultiThreshold.

    MultiThreshold(x; out_scale=a, out_bias=b) -> Add(c)   =>  MultiThreshold(x; a, b + c)
    MultiThreshold(x; out_scale=a, out_bias=b) -> Mul(m)   =>  MultiThreshold(x; a*m, b*m)

for scalar constants c and m, where the levels stay integers. This turns a bipolar MultiThreshold (a=2, b=-1) followed by the
{-1,+1} -> {0,1} re-encoding of `ConvertBipolarMatMulToXnorPopcount` into a binary one (a=1, b=0),
so the XNOR unit reads the threshold bit directly. Reshapes and max pools between the two are
looked through (an increasing scalar affine map commutes with them).
"""

from __future__ import annotations

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import const, is_scalar, new_tensor, single_consumer
from hwgen.transforms.quant import dtype_for_levels


#: ops an increasing scalar affine map commutes with
_PASS_THROUGH = ("Reshape", "Flatten", "MaxPool")


def _find_affine(model: ModelWrapper, mt) -> tuple[list, object] | None:
    """The scalar Add/Mul reached from `mt` through single-reader reshapes and max pools (the
    nodes passed through, and the Add/Mul), or None."""
    path, node = [], single_consumer(model, mt.output[0])
    while node is not None and node.op_type in _PASS_THROUGH:
        path.append(node)
        node = single_consumer(model, node.output[0])
    if node is None or node.op_type not in ("Add", "Mul") or not is_scalar(const(model, node.input[1])):
        return None
    if node.op_type == "Mul" and float(const(model, node.input[1]).reshape(-1)[0]) <= 0 \
            and any(p.op_type == "MaxPool" for p in path):
        return None  # max does not commute with a falling map
    return path, node


def _move_next_to(model: ModelWrapper, mt, path: list, affine) -> None:
    """mt -> path -> affine -> y   becomes   mt -> affine -> path -> y."""
    if not path:
        return
    moved = new_tensor(model, mt.output[0])
    final = affine.output[0]
    affine.input[0], affine.output[0] = mt.output[0], moved
    path[0].input[0] = moved
    path[-1].output[0] = final


def _absorbed_levels(model: ModelWrapper, mt, affine) -> DataType | None:
    """The datatype of the levels after absorbing `affine`, or None if they would not all be
    integers (a float scale stays a Mul, for the join or layer after it to take)."""
    op = getCustomOp(mt)
    a, b = op.get_nodeattr("out_scale"), op.get_nodeattr("out_bias")
    c = float(const(model, affine.input[1]).reshape(-1)[0])
    a, b = (a, b + c) if affine.op_type == "Add" else (a * c, b * c)
    steps = int(model.get_initializer(mt.input[1]).shape[1])
    return dtype_for_levels([a * k + b for k in range(steps + 1)])


class AbsorbAffineIntoMultiThreshold(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for mt in model.graph.node:
            if mt.op_type != "MultiThreshold":
                continue
            found = _find_affine(model, mt)
            if found is not None and _absorbed_levels(model, mt, found[1]) is not None:
                matches.append((mt, *found))
        for mt, path, nxt in matches:
            _move_next_to(model, mt, path, nxt)
            op = getCustomOp(mt)
            a, b = op.get_nodeattr("out_scale"), op.get_nodeattr("out_bias")
            c = float(const(model, nxt.input[1]).reshape(-1)[0])
            if nxt.op_type == "Add":
                b = b + c
            else:
                a, b = a * c, b * c
            op.set_nodeattr("out_scale", float(a))
            op.set_nodeattr("out_bias", float(b))
            mt.output[0] = nxt.output[0]
            model.graph.node.remove(nxt)
            levels = int(model.get_initializer(mt.input[1]).shape[1])
            values = [a * k + b for k in range(levels + 1)]
            dtype = dtype_for_levels(values) or DataType["FLOAT32"]
            op.set_nodeattr("out_dtype", dtype.name)
            for tensor in [mt.output[0]] + [p.output[0] for p in path]:  # reshapes and pools carry it on
                model.set_tensor_datatype(tensor, dtype)
        return model, bool(matches)

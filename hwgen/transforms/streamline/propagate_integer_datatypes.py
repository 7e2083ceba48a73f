"""PropagateIntegerDatatypes.

    x: UINT7 -> MaxPool -> y: INT8 (annotated when x was still INT8)      =>      y: UINT7

Rewrites annotate the tensors they make with the datatype of the moment; a later rewrite can
narrow a producer (a ReLU's quantizer becomes a table of levels 0..127), leaving the ops after it
annotated wider than what they now carry. Hardware units build their streams from these
annotations, so they must be exact: this pass recomputes them in graph order for the ops whose
output type follows from their inputs' (pools, reshapes, concatenations, window sums, scaled
adds), and the integer ops' own `out_dtype` attributes with them. Narrowing only: every value the
old type held that can still occur the new one holds too, so thresholds found on it stay right.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.ops.integer import DOMAIN as INTEGER_DOMAIN
from hwgen.transforms.graph import int_dtype_for_range
from hwgen.units.add_streams import sum_range
from hwgen.units.concat_streams import concat_dtype

#: ops whose output holds exactly the values of their (one) input
_SAME_VALUES = ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze")


def _derived(model: ModelWrapper, node):
    """The output datatype `node` produces from its inputs' datatypes, or None if not derived."""
    dtypes = [model.get_tensor_datatype(t) for t in node.input if t and model.get_initializer(t) is None]
    if not dtypes or not all(d.is_integer() for d in dtypes):
        return None
    if node.domain in ("", "ai.onnx") and node.op_type in _SAME_VALUES:
        return dtypes[0]
    if node.domain in ("", "ai.onnx") and node.op_type == "Concat":
        return concat_dtype(tuple(dtypes))
    if node.domain == INTEGER_DOMAIN and node.op_type == "SumPool":
        op = getCustomOp(node)
        _, _, h, w = model.get_tensor_shape(node.input[0])
        kh, kw = op.window(h, w)
        n = kh * kw
        return int_dtype_for_range(n * int(dtypes[0].min()), n * int(dtypes[0].max()))
    if node.domain == INTEGER_DOMAIN and node.op_type == "ScaledAdd" and len(dtypes) == 2:
        op = getCustomOp(node)
        return int_dtype_for_range(*sum_range(dtypes[0], dtypes[1], *op.coefficients()))
    return None


class PropagateIntegerDatatypes(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in model.graph.node:
            dtype = _derived(model, node)
            if dtype is None or model.get_tensor_datatype(node.output[0]) == dtype:
                continue
            model.set_tensor_datatype(node.output[0], dtype)
            if node.domain == INTEGER_DOMAIN:
                getCustomOp(node).set_nodeattr("out_dtype", dtype.name)
            changed = True
        return model, changed

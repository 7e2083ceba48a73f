"""Which ops hwgen accepts in an input graph, checked before anything else touches the graph.

An op outside these sets is reported by node name and op type, so the user knows what to change
in the model instead of meeting a failure deep inside a transformation.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper

from hwgen.errors import HwgenError

#: Standard ONNX ops that streamlining folds away, moves to the host or maps to hardware.
STANDARD_OPS = frozenset(
    {
        "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Neg", "BatchNormalization", "Relu",
        "Reshape", "Flatten", "Identity", "Constant", "TopK", "ArgMax", "Squeeze", "Unsqueeze",
        "Transpose", "Dropout", "Conv", "MaxPool",
    }
)  # fmt: skip
#: QONNX custom ops (domain qonnx.custom_op.general) that hwgen understands.
QONNX_OPS = frozenset({"Quant", "BipolarQuant", "Trunc", "MultiThreshold", "XnorPopcountMatMul"})


def check_supported(model: ModelWrapper) -> None:
    """Raise `HwgenError` naming the first node whose op hwgen cannot build."""
    for index, node in enumerate(model.graph.node):
        if node.op_type not in STANDARD_OPS | QONNX_OPS:
            name = node.name or f"#{index}"
            raise HwgenError(
                f"op '{node.op_type}' (domain '{node.domain or 'ai.onnx'}') is not supported; "
                f"supported: {', '.join(sorted(STANDARD_OPS | QONNX_OPS))}",
                where=f"node {name}",
            )

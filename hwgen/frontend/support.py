"""Which ops hwgen accepts, checked twice: every node must be an op someone defines before ingest
touches the graph (`check_known_ops`), and after ingest every node must be one that streamlining
folds away, moves to the host or maps to hardware (`check_supported`).

An op outside these sets is reported by node name, op type and domain, so the user knows what to
change in the model instead of meeting a failure deep inside a transformation.
"""

from __future__ import annotations

import onnx.defs
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.errors import HwgenError
from hwgen.transforms.ingest.normalize_domains import FOREIGN_DOMAINS, QONNX_DOMAIN, QONNX_OPS

#: Standard ONNX ops that streamlining folds away, moves to the host or maps to hardware.
STANDARD_OPS = frozenset(
    {
        "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Neg", "BatchNormalization", "Relu",
        "Reshape", "Flatten", "Identity", "Constant", "TopK", "ArgMax", "Squeeze", "Unsqueeze",
        "Transpose", "Dropout", "Conv", "MaxPool", "Sign", "Concat", "AveragePool", "GlobalAveragePool",
        "PRelu", "ReduceMean",
    }
)  # fmt: skip


def _name(node, index: int) -> str:
    return f"node {node.name or f'#{index}'}"


def check_known_ops(model: ModelWrapper) -> None:
    """Raise naming the first node whose op nobody defines: an unknown domain, or a standard-domain
    op that is not in ONNX. (Ops that are merely unsupported are named after ingest.)"""
    for index, node in enumerate(model.graph.node):
        if node.domain in ("", "ai.onnx"):
            if node.op_type in QONNX_OPS or onnx.defs.has(node.op_type):
                continue
            raise HwgenError(f"op '{node.op_type}' is not an ONNX operator", where=_name(node, index))
        if node.op_type in QONNX_OPS and node.domain in FOREIGN_DOMAINS | {QONNX_DOMAIN}:
            continue
        raise HwgenError(f"op '{node.op_type}' of domain '{node.domain}' is unknown to hwgen (known custom "
                         f"ops: {', '.join(sorted(QONNX_OPS))} in domain {QONNX_DOMAIN} or "
                         f"{', '.join(sorted(d for d in FOREIGN_DOMAINS if d and d != 'ai.onnx'))})",
                         where=_name(node, index))


def check_supported(model: ModelWrapper) -> None:
    """Raise `HwgenError` naming the first node whose op hwgen cannot build, or a graph that does
    not have exactly one input and one output."""
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise HwgenError(f"the graph has {len(graph.input)} inputs and {len(graph.output)} outputs; "
                         "hwgen builds graphs with exactly one of each")
    for index, node in enumerate(graph.node):
        if node.op_type not in STANDARD_OPS | QONNX_OPS:
            raise HwgenError(
                f"op '{node.op_type}' (domain '{node.domain or 'ai.onnx'}') is not supported; "
                f"supported: {', '.join(sorted(STANDARD_OPS | QONNX_OPS))}",
                where=_name(node, index),
            )

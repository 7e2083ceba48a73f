"""Which ops hwgen accepts, checked twice: every node must be an op someone defines before ingest
touches the graph (`check_known_ops`), and after ingest every node must be one that streamlining
folds away, moves to the host or maps to hardware (`check_supported`).

An op outside these sets is reported by node name, op type and domain, so the user knows what to
change in the model instead of meeting a failure deep inside a transformation.
"""

from __future__ import annotations

import onnx
import onnx.checker
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


#: the domains of the ops hwgen itself writes into a build folder's graphs
BUILD_DOMAINS = frozenset({"", "ai.onnx", QONNX_DOMAIN, "hwgen.ops", "hwgen.ops.integer"})


def check_build_graph(model: ModelWrapper, path: str) -> None:
    """A graph read back from a build folder may only hold ops of the domains hwgen writes:
    executing a node makes QONNX import the Python module its domain names, so a graph from
    anywhere else must never reach execution."""
    for index, node in enumerate(model.graph.node):
        if node.domain not in BUILD_DOMAINS:
            raise HwgenError(f"{_name(node, index)} has domain '{node.domain}', which hwgen never writes: "
                             "not a graph of a hwgen build", where=path)


def check_schemas(model: ModelWrapper) -> None:
    """ONNX's own checker: every standard op with the inputs, outputs and attributes its schema
    allows (an Add with five inputs, a Conv with a string for its strides), types consistent."""
    from hwgen.transforms.ingest.normalize_domains import normalize_domains

    proto = onnx.ModelProto()
    proto.CopyFrom(model.model)
    normalize_domains(ModelWrapper(proto))  # old domains, and the import qonnx's renaming leaves out
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        detail = " ".join(str(exc).split())
        raise HwgenError(f"not a valid ONNX model: {detail[:300]}") from None


def check_connected(model: ModelWrapper) -> None:
    """Raise naming the first tensor that a node reads but nothing writes (a node was removed),
    or the first node whose results nothing uses: such a graph is not what its author meant, and
    hwgen would otherwise build a different network in silence."""
    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    produced = {o for n in graph.node for o in n.output if o}
    read = {t for n in graph.node for t in n.input if t} | {o.name for o in graph.output}
    for index, node in enumerate(graph.node):
        for t in node.input:
            if t and t not in available and t not in produced:
                raise HwgenError(f"is read by {_name(node, index)} but no node writes it and it is not a "
                                 "graph input or initializer", where=f"tensor {t}")
    for o in graph.output:
        if o.name not in produced and o.name not in available:
            raise HwgenError("is the graph output but no node writes it", where=f"tensor {o.name}")
    for index, node in enumerate(graph.node):
        if node.op_type != "Constant" and not any(o in read for o in node.output if o):
            raise HwgenError(f"op '{node.op_type}': nothing uses its result ({', '.join(node.output)})",
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

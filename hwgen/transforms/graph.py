"""Small helpers over `ModelWrapper` that every rewrite needs: constants, single consumers, node
insertion with fresh tensor names, and datatype bookkeeping."""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, TensorProto, helper
from qonnx.core.datatype import BaseDataType
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.units.datapath import smallest_int_dtype

QONNX_DOMAIN = "qonnx.custom_op.general"
HWGEN_DOMAIN = "hwgen.ops"


def const(model: ModelWrapper, tensor: str) -> np.ndarray | None:
    """The value of `tensor` if it is an initializer, else None."""
    return model.get_initializer(tensor)


def single_consumer(model: ModelWrapper, tensor: str) -> NodeProto | None:
    """The only node reading `tensor`, or None when it has zero or several readers or is a graph
    output (rewriting then would change what others see)."""
    if tensor in [o.name for o in model.graph.output]:
        return None
    consumers = model.find_consumers(tensor)
    return consumers[0] if consumers is not None and len(consumers) == 1 else None


def is_scalar(value: np.ndarray | None) -> bool:
    return value is not None and value.size == 1


def fresh_name(model: ModelWrapper, hint: str = "t") -> str:
    """A tensor name not yet in the graph, `<hint>_<n>` with the smallest n: deterministic, so that
    the same model always builds into byte-identical files (qonnx's own helper draws random names)."""
    g = model.graph
    taken = {v.name for v in list(g.input) + list(g.output) + list(g.value_info) + list(g.initializer)}
    taken.update(name for n in g.node for name in list(n.input) + list(n.output))
    index = 0
    while f"{hint}_{index}" in taken:
        index += 1
    return f"{hint}_{index}"


def fresh_node_name(model: ModelWrapper, prefix: str) -> str:
    """`<prefix>_<n>` with the smallest n no node has yet: new hardware nodes are numbered in graph
    order, whatever pass of a rewrite makes them."""
    taken = {n.name for n in model.graph.node}
    index = 0
    while f"{prefix}_{index}" in taken:
        index += 1
    return f"{prefix}_{index}"


def new_tensor(model: ModelWrapper, like: str | None = None, shape: list[int] | None = None,
               dtype: BaseDataType | None = None) -> str:
    """A fresh float tensor, with the shape of `like` unless `shape` is given."""
    name = fresh_name(model, "t")
    if shape is None and like is not None:
        shape = model.get_tensor_shape(like)
    model.graph.value_info.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    if dtype is not None:
        model.set_tensor_datatype(name, dtype)
    return name


def add_const(model: ModelWrapper, value: np.ndarray | float, dtype: BaseDataType | None = None) -> str:
    """A fresh initializer holding `value` (as float32, the QONNX convention)."""
    name = fresh_name(model, "c")
    model.set_initializer(name, np.asarray(value, dtype=np.float32))
    if dtype is not None:
        model.set_tensor_datatype(name, dtype)
    return name


def add_integer_thresholds(model: ModelWrapper, thresholds: np.ndarray) -> str:
    """A fresh initializer holding integer `thresholds`: float32 (the QONNX convention) where every
    value is exact there, else float64 (a wide join's sums beyond 2^24, compared exactly)."""
    wide = np.abs(thresholds).max(initial=0) > (1 << 24)
    name = fresh_name(model, "c")
    model.set_initializer(name, np.asarray(thresholds, dtype=np.float64 if wide else np.float32))
    return name


def add_int_const(model: ModelWrapper, value: np.ndarray) -> str:
    """A fresh int64 initializer: integers beyond float32's 2^24 (a requantization's offsets) kept
    exactly."""
    name = fresh_name(model, "c")
    model.set_initializer(name, np.asarray(value, dtype=np.int64))
    return name


def add_shape(model: ModelWrapper, shape: list[int]) -> str:
    """A fresh int64 initializer holding a shape (a Reshape's second input)."""
    name = fresh_name(model, "shape")
    model.set_initializer(name, np.asarray(shape, dtype=np.int64))
    return name


def insert_after(model: ModelWrapper, anchor: NodeProto, nodes: list[NodeProto]) -> None:
    """Insert `nodes` right after `anchor` in the node list (keeps the list topologically sorted)."""
    index = list(model.graph.node).index(anchor)
    for offset, node in enumerate(nodes):
        model.graph.node.insert(index + 1 + offset, node)


def make_node(op_type: str, inputs: list[str], outputs: list[str], *, domain: str = "",
              name: str = "", **attrs) -> NodeProto:
    return helper.make_node(op_type, inputs, outputs, domain=domain, name=name, **attrs)


def declare_domains(model: ModelWrapper) -> ModelWrapper:
    """Add an opset import (version 1) for every custom domain the nodes use and the model does
    not declare, so that the graph is valid ONNX (`onnx.checker`, Netron) as well as QONNX."""
    declared = {o.domain for o in model.model.opset_import}
    for domain in sorted({n.domain for n in model.graph.node} - declared - {"", "ai.onnx"}):
        model.model.opset_import.append(helper.make_opsetid(domain, 1))
    return model


def int_dtype_for_range(lo: int, hi: int) -> BaseDataType:
    """Smallest BINARY / UINTn / INTn holding every integer in [lo, hi] (the units' own rule)."""
    return smallest_int_dtype(lo, hi)

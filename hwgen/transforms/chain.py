"""Elementwise float chains after an integer accumulator, and running them on chosen values.

Several rewrites need to know what the model's own float ops do to each possible accumulator
value (to find thresholds, or to prove that a chain keeps the order of classes). They run the
ops themselves, through the same QONNX execution as the model, instead of reasoning about floats.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes

from hwgen.errors import HwgenError
from hwgen.transforms.graph import const, single_consumer

#: ops applied per element with constant (per-tensor or per-channel) parameters
ELEMENTWISE = ("Mul", "Add", "Sub", "Div", "BatchNormalization", "Relu", "PRelu", "Neg", "Identity")


def is_elementwise(model: ModelWrapper, node) -> bool:
    """An elementwise op of one tensor: every input but the first a constant (so not a join)."""
    return node.op_type in ELEMENTWISE and all(not name or const(model, name) is not None for name in node.input[1:])


def walk_back(model: ModelWrapper, tensor: str) -> tuple[str, list]:
    """From `tensor`, go up through single-consumer elementwise ops; returns the tensor where
    the chain starts and the chain's nodes in execution order."""
    chain = []
    node = model.find_producer(tensor)
    while node is not None and is_elementwise(model, node) and single_consumer(model, node.output[0]):
        chain.insert(0, node)
        tensor = node.input[0]
        node = model.find_producer(tensor)
    return tensor, chain


class ElementwiseChain:
    """`nodes` (elementwise, constant parameters) as a small graph runnable on (R, C) inputs.

    `start` is the tensor the chain reads, or a list of them for a subgraph with several inputs
    (a join: both operands' chains, the Add, and what follows); every other node input must be a
    constant. `run` takes one (R, C) array per start tensor."""

    def __init__(self, model: ModelWrapper, start: str | list[str], nodes: list) -> None:
        starts = [start] if isinstance(start, str) else list(start)
        self.rank = len(model.get_tensor_shape(starts[0]))
        copies = []
        inits = {}
        for n in nodes:
            c = helper.make_node(n.op_type, list(n.input), list(n.output), domain=n.domain, name=n.name)
            c.attribute.extend(n.attribute)
            copies.append(c)
            produced_here = {o for m in nodes for o in m.output}
            for name in n.input:
                if not name or name in starts or name in produced_here:
                    continue
                value = const(model, name)
                if value is None:
                    raise HwgenError("has a non-constant parameter input", where=f"node {n.name}")
                if value.ndim >= 3 and np.prod(value.shape[2:]) != 1:
                    raise HwgenError("parameters that vary over pixels are not supported", where=f"node {n.name}")
                inits[name] = value.astype(np.float32)
        self.nodes, self.parameters = copies, inits
        self.inputs = starts
        self.input = starts[0]
        self.output = nodes[-1].output[0] if nodes else starts[0]
        self.opsets = list(model.model.opset_import)

    def run(self, *values: np.ndarray, exact: bool = False) -> np.ndarray:
        """The chain's output for values of shape (R, C), one array per start tensor, as float64 (R, C).

        As the model computes it, in float32; or, `exact`, in float64 (the model's parameters, as
        float32 values, with every operation rounded to float64): the real result to within 1e-15,
        what the float32 one approximates."""
        if not self.nodes:
            return values[0].astype(np.float64)
        shape = list(values[0].shape) + [1] * (self.rank - 2)
        kind, dtype = (TensorProto.DOUBLE, np.float64) if exact else (TensorProto.FLOAT, np.float32)
        graph = helper.make_graph(
            self.nodes, "chain",
            [helper.make_tensor_value_info(name, kind, shape) for name in self.inputs],
            [helper.make_tensor_value_info(self.output, kind, shape)],
            initializer=[helper.make_tensor(name, kind, v.shape, v.astype(dtype).ravel())
                         for name, v in self.parameters.items()],
        )
        proto = helper.make_model(graph, opset_imports=self.opsets)
        proto.ir_version = 10
        self.model = ModelWrapper(proto).transform(InferShapes())
        feed = {name: v.reshape(shape).astype(dtype) for name, v in zip(self.inputs, values)}
        out = execute_onnx(self.model, feed)[self.output]
        return out.reshape(values[0].shape).astype(np.float64)


def walk_forward(model: ModelWrapper, tensor: str, stop: tuple[str, ...]) -> tuple[list, object | None]:
    """From `tensor`, go down through single-reader elementwise ops to the first node whose op is
    in `stop`; returns the chain's nodes and that node (None if the walk ends elsewhere)."""
    chain = []
    node = single_consumer(model, tensor)
    while node is not None and node.op_type not in stop and is_elementwise(model, node) \
            and node.input[0] == tensor:
        chain.append(node)
        tensor = node.output[0]
        node = single_consumer(model, tensor)
    if node is None or node.op_type not in stop or node.input[0] != tensor:
        return chain, None
    return chain, node

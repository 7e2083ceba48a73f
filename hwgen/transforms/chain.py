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
ELEMENTWISE = ("Mul", "Add", "Sub", "Div", "BatchNormalization", "Relu", "Neg", "Identity")


def walk_back(model: ModelWrapper, tensor: str) -> tuple[str, list]:
    """From `tensor`, go up through single-consumer elementwise ops; returns the tensor where
    the chain starts and the chain's nodes in execution order."""
    chain = []
    node = model.find_producer(tensor)
    while node is not None and node.op_type in ELEMENTWISE and single_consumer(model, node.output[0]):
        chain.insert(0, node)
        tensor = node.input[0]
        node = model.find_producer(tensor)
    return tensor, chain


class ElementwiseChain:
    """`nodes` (elementwise, constant parameters) as a small graph runnable on (R, C) inputs."""

    def __init__(self, model: ModelWrapper, start: str, nodes: list) -> None:
        self.rank = len(model.get_tensor_shape(start))
        copies = []
        inits = []
        for n in nodes:
            c = helper.make_node(n.op_type, list(n.input), list(n.output), domain=n.domain, name=n.name)
            c.attribute.extend(n.attribute)
            copies.append(c)
            for name in n.input[1:]:
                value = const(model, name)
                if value is None and name:
                    raise HwgenError("has a non-constant parameter input", where=f"node {n.name}")
                if value is not None:
                    if value.ndim >= 3 and np.prod(value.shape[2:]) != 1:
                        raise HwgenError("parameters that vary over pixels are not supported",
                                         where=f"node {n.name}")
                    inits.append(helper.make_tensor(name, TensorProto.FLOAT, value.shape,
                                                    value.astype(np.float32).ravel()))
        self.nodes, self.initializers = copies, inits
        self.input = start
        self.output = nodes[-1].output[0] if nodes else start
        self.opsets = list(model.model.opset_import)

    def run(self, acc: np.ndarray) -> np.ndarray:
        """The chain's output for accumulator values `acc` of shape (R, C), as float64 (R, C)."""
        if not self.nodes:
            return acc.astype(np.float64)
        shape = list(acc.shape) + [1] * (self.rank - 2)
        graph = helper.make_graph(
            self.nodes, "chain",
            [helper.make_tensor_value_info(self.input, TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info(self.output, TensorProto.FLOAT, shape)],
            initializer=self.initializers,
        )
        proto = helper.make_model(graph, opset_imports=self.opsets)
        proto.ir_version = 10
        self.model = ModelWrapper(proto).transform(InferShapes())
        out = execute_onnx(self.model, {self.input: acc.reshape(shape).astype(np.float32)})[self.output]
        return out.reshape(acc.shape).astype(np.float64)

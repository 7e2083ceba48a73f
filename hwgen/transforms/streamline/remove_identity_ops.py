"""RemoveIdentityOps.

    Mul(x, 1) | Div(x, 1) | Add(x, 0) | Sub(x, 0) | Identity(x) | Dropout(x)   =>   x

Only exact identities are removed (qonnx's own version compares with a tolerance, which could
drop a Mul by 1.000001 and silently change results).
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import const

_NEUTRAL = {"Mul": 1.0, "Div": 1.0, "Add": 0.0, "Sub": 0.0}


def _is_identity(model: ModelWrapper, node) -> bool:
    if node.op_type in ("Identity", "Dropout"):
        return len(node.output) == 1 or not model.find_consumers(node.output[1])
    if node.op_type not in _NEUTRAL:
        return False
    c = const(model, node.input[1])
    if c is None or not np.all(c == _NEUTRAL[node.op_type]):
        return False
    # broadcasting against a bigger constant would change the shape
    return c.size == 1 or list(c.shape) == list(model.get_tensor_shape(node.output[0]))


class RemoveIdentityOps(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node if _is_identity(model, n)]
        graph_outputs = {o.name for o in model.graph.output}
        removed = 0
        for node in matches:
            src, dst = node.input[0], node.output[0]
            if dst in graph_outputs:
                producer = model.find_producer(src)
                if producer is None or src in graph_outputs or len(model.find_consumers(src)) > 1:
                    continue  # graph input straight to output, or a fork: keep the node
                producer.output[list(producer.output).index(src)] = dst
                dt = model.get_tensor_datatype(src)
                model.set_tensor_datatype(dst, dt)
            else:
                for consumer in model.find_consumers(dst) or []:
                    for i, name in enumerate(consumer.input):
                        if name == dst:
                            consumer.input[i] = src
            model.graph.node.remove(node)
            removed += 1
        return model, removed > 0

"""RemoveLayoutTransposes.

    in (N, H, W, C) -> Transpose(to NCHW) -> ...     =>     in -> ...
    ... -> Transpose(to NHWC) -> out (N, H, W, C)    =>     ... -> out

The transposes the partition put at the accelerator's edges only kept the integer graph
executable in NCHW; hardware units read and write channel-last streams, so they go.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation


class RemoveLayoutTransposes(Transformation):
    def apply(self, model: ModelWrapper):
        graph_in, graph_out = model.graph.input[0].name, model.graph.output[0].name
        removed = 0
        for node in [n for n in model.graph.node if n.op_type == "Transpose"]:
            if node.input[0] == graph_in:
                for consumer in model.find_consumers(node.output[0]) or []:
                    consumer.input[:] = [graph_in if i == node.output[0] else i for i in consumer.input]
                model.graph.node.remove(node)
                removed += 1
            elif node.output[0] == graph_out:
                producer = model.find_producer(node.input[0])
                producer.output[:] = [graph_out if o == node.input[0] else o for o in producer.output]
                model.graph.node.remove(node)
                removed += 1
        return model, removed > 0

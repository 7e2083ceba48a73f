"""FoldConstantNodes.

    W (constant) -> GreaterOrEqual -> Where -> Mul -> Sum    =>    W' (constant)

A standard ONNX node whose inputs are all constants becomes the constant it computes, evaluated
by ONNX's reference implementation at the model's own opset (qonnx's `FoldConstants` runs each
node in onnxruntime under a default opset, which refuses ops newer than it, such as the
`GreaterOrEqual` an exporter leaves when it does not fold a large weight computation itself:
ABC-Net's weight bases). Quantizers are left to the streamliner, which folds weight quantizers
into their layers; custom ops are not evaluated here.
"""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

#: constant nodes of these ops stay: the streamliner reads them as what they are
KEEP = ("Quant", "BipolarQuant", "Constant")


class FoldConstantNodes(Transformation):
    def apply(self, model: ModelWrapper):
        initializers = {i.name for i in model.graph.initializer}
        opsets = [o for o in model.model.opset_import if o.domain in ("", "ai.onnx")]
        for node in model.graph.node:
            if node.domain not in ("", "ai.onnx") or node.op_type in KEEP or not node.input:
                continue
            if not all(name in initializers for name in node.input if name):
                continue
            feeds = {name: model.get_initializer(name) for name in node.input if name}
            graph = helper.make_graph(
                [node], "constant", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                                     for n, v in feeds.items()],
                [helper.make_value_info(o, helper.TypeProto()) for o in node.output if o])
            outputs = ReferenceEvaluator(helper.make_model(graph, opset_imports=opsets)).run(None, feeds)
            for name, value in zip([o for o in node.output if o], outputs):
                model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
            model.graph.node.remove(node)
            return model, True
        return model, False

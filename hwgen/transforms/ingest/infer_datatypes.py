"""InferDataTypesKeepingAnnotations.

    tensors without a datatype   =>   the datatype qonnx infers from their producer

QONNX datatype inference, node by node, except that an integer datatype already annotated on a
tensor wins: FINN-style graphs carry meaningful annotations (e.g. BINARY on the {0,1} input of an
`XnorPopcountMatMul`, made by a Mul) that plain inference would reset to FLOAT32, and ingest's own
annotations (a Sign's three levels) must survive it too.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation


class InferDataTypesKeepingAnnotations(Transformation):
    def apply(self, model: ModelWrapper):
        from qonnx.transformation.infer_datatypes import _infer_node_datatype

        changed = False
        for node in model.graph.node:
            given = {t: model.get_tensor_datatype(t) for t in node.output}
            _infer_node_datatype(model, node, False)
            for tensor, dtype in given.items():
                if dtype.is_integer():
                    model.set_tensor_datatype(tensor, dtype)
                changed |= model.get_tensor_datatype(tensor) != dtype
        return model, changed

"""FixDynamicBatch.

    input x: [batch, 1, 28, 28]  (a named, dynamic batch axis)   =>   x: [1, 1, 28, 28]

An accelerator streams one frame at a time, so the batch axis is 1 while the graph is rewritten
(execution re-batches it, see `hwgen.execute`). A dynamic axis anywhere else has no fixed stream
shape: that is an error naming the tensor. Shapes of intermediate tensors that depended on the
dynamic axis are dropped and inferred again.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError


def _is_dynamic(dim) -> bool:
    return dim.HasField("dim_param") or not dim.HasField("dim_value") or dim.dim_value <= 0


class FixDynamicBatch(Transformation):
    def apply(self, model: ModelWrapper):
        graph = model.graph
        changed = False
        for vi in list(graph.input) + list(graph.output):
            tensor_type = vi.type.tensor_type
            if not tensor_type.HasField("shape"):
                if vi in graph.input:
                    raise HwgenError("has no shape: hwgen needs a fixed input shape", where=f"tensor {vi.name}")
                continue
            dims = tensor_type.shape.dim
            for axis, dim in enumerate(dims):
                if not _is_dynamic(dim):
                    continue
                if axis != 0 and vi in graph.input:
                    raise HwgenError(f"axis {axis} is dynamic ('{dim.dim_param}'); only the batch axis "
                                     "may be", where=f"tensor {vi.name}")
                if axis == 0:
                    dim.Clear()
                    dim.dim_value = 1
                    changed = True
        if changed:
            for vi in list(graph.value_info):
                shape = vi.type.tensor_type.shape
                if any(_is_dynamic(d) for d in shape.dim):
                    graph.value_info.remove(vi)
        return model, changed

"""DuplicateForkedElementwise.

    q -> Mul(s) -> {A, B}        =>      q -> Mul(s) -> A,   q -> Mul(s) -> B

An elementwise op with constant parameters whose result several nodes read is copied, one copy
per reader. A scale (or a shift, a BatchNorm) then sits on each branch of a fork by itself, so the
chain from the integer tensor `q` to each branch's next quantizer, join or layer is a private one
that the other rewrites can fold; the fork itself moves back to the integer tensor, where the
hardware fans out a stream. Exact: every copy computes the same values.
"""

from __future__ import annotations

import copy

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.chain import is_elementwise
from hwgen.transforms.float_ties import inexact_scales, note_inexact_scale
from hwgen.transforms.graph import new_tensor


class DuplicateForkedElementwise(Transformation):
    def apply(self, model: ModelWrapper):
        graph_outputs = {o.name for o in model.graph.output}
        for node in model.graph.node:
            if not is_elementwise(model, node):
                continue
            readers = model.find_consumers(node.output[0]) or []
            if len(readers) < 2 or node.output[0] in graph_outputs:
                continue
            index = list(model.graph.node).index(node)
            inexact = node.name in inexact_scales(model)
            for n, reader in enumerate(readers[1:], start=1):
                twin = copy.deepcopy(node)
                twin.name = f"{node.name}_fork{n}"
                if inexact:
                    note_inexact_scale(model, twin.name)
                twin.output[0] = new_tensor(model, node.output[0], dtype=model.get_tensor_datatype(node.output[0]))
                reader.input[:] = [twin.output[0] if i == node.output[0] else i for i in reader.input]
                model.graph.node.insert(index + n, twin)
            return model, True
        return model, False

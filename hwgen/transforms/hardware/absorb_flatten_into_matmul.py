"""AbsorbFlattenIntoMatMul.

    Reshape(x: (N, C, H, W) -> (N, C*H*W)) -> MatMul(., W)     =>     MatMul(x, W[perm])

The stream already carries x channel-last, (h, w, c) order; the flatten of the float model is in
(c, h, w) order. Permuting the weight rows once makes the two agree, and the flatten disappears.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import add_const, const, single_consumer


class AbsorbFlattenIntoMatMul(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for node in model.graph.node:
            if node.op_type not in ("Reshape", "Flatten"):
                continue
            shape = model.get_tensor_shape(node.input[0])
            mm = single_consumer(model, node.output[0])
            if len(shape) == 4 and mm is not None and mm.op_type in ("MatMul", "XnorPopcountMatMul"):
                matches.append((node, mm, shape))
        for node, mm, (_, c, h, w) in matches:
            weights = const(model, mm.input[1])
            chw = np.arange(c * h * w).reshape(c, h, w)
            order = chw.transpose(1, 2, 0).reshape(-1)  # row for stream position (h, w, c)
            mm.input[1] = add_const(model, weights[order], model.get_tensor_datatype(mm.input[1]))
            mm.input[0] = node.input[0]
            model.graph.node.remove(node)
        return model, bool(matches)

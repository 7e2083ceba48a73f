"""AbsorbMonotonicChainIntoTopK.

    acc (integer) -> E1 -> ... -> Ek -> TopK(k) | ArgMax      =>      acc -> TopK(k) | ArgMax

when E1..Ek are one and the same strictly increasing function for every class over the
accumulator's range: then they keep the order of the classes and their ties, so the indices of
the top k are those of the integer accumulator and the top-k can run in hardware. Checked by
running the model's own ops on every accumulator value, not by algebra. A per-class BatchNorm
(as in BNN-PYNQ's checkpoints) fails the check and stays on the host, exactly.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from hwgen.transforms.chain import ElementwiseChain, walk_back
from hwgen.transforms.graph import const
from hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds import accumulator_range

#: beyond this many accumulator values per class the check is not attempted
MAX_RANGE = 1 << 20


def _is_hardware_topk(model: ModelWrapper, node) -> bool:
    """TopK / ArgMax over the class axis of a (N, C) tensor, largest first, indices kept."""
    shape = model.get_tensor_shape(node.input[0])
    if shape is None or len(shape) != 2:
        return False
    axis = get_by_name(node.attribute, "axis")
    axis = -1 if axis is None and node.op_type == "TopK" else (0 if axis is None else axis.i)
    if axis not in (1, -1):
        return False
    if node.op_type == "ArgMax":
        keep = get_by_name(node.attribute, "keepdims")
        last = get_by_name(node.attribute, "select_last_index")
        return (keep is None or keep.i == 1) and (last is None or last.i == 0)
    largest = get_by_name(node.attribute, "largest")
    used_values = model.find_consumers(node.output[0]) or node.output[0] in [o.name for o in model.graph.output]
    return (largest is None or largest.i == 1) and not used_values and const(model, node.input[1]) is not None


class AbsorbMonotonicChainIntoTopK(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for node in model.graph.node:
            if node.op_type not in ("TopK", "ArgMax") or not _is_hardware_topk(model, node):
                continue
            start, chain = walk_back(model, node.input[0])
            found = accumulator_range(model, start)
            if not chain or found is None:
                continue
            lo, hi, _ = found
            if int(hi.max() - lo.min()) + 1 > MAX_RANGE:
                continue
            grid = np.arange(int(lo.min()), int(hi.max()) + 1)
            out = ElementwiseChain(model, start, chain).run(np.repeat(grid[:, None], lo.size, axis=1))
            same_for_all = np.all(out == out[:, :1])
            increasing = np.all(np.diff(out[:, 0]) > 0)
            if same_for_all and increasing:
                matches.append((node, start, chain))
        for node, start, chain in matches:
            node.input[0] = start
            for n in chain:
                model.graph.node.remove(n)
        return model, bool(matches)

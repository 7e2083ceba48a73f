"""CancelInverseTransposes.

    x -> Transpose(p) -> Transpose(q) -> y     with q . p the identity     =>     x -> y

Layout changes written out by other rewrites (or by a FINN-ONNX export) often meet their inverse.
Only a pair whose first output has no other reader is removed.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from hwgen.transforms.graph import single_consumer


def _perm(node) -> list[int] | None:
    attr = get_by_name(node.attribute, "perm")
    return list(attr.ints) if attr is not None else None


class CancelInverseTransposes(Transformation):
    def apply(self, model: ModelWrapper):
        graph_outputs = {o.name for o in model.graph.output}
        for first in [n for n in model.graph.node if n.op_type == "Transpose"]:
            second = single_consumer(model, first.output[0])
            if second is None or second.op_type != "Transpose":
                continue
            p, q = _perm(first), _perm(second)
            if p is None or q is None or len(p) != len(q) or [p[i] for i in q] != list(range(len(p))):
                continue
            src, dst = first.input[0], second.output[0]
            if dst in graph_outputs:
                continue
            for reader in model.find_consumers(dst) or []:
                reader.input[:] = [src if name == dst else name for name in reader.input]
            model.graph.node.remove(first)
            model.graph.node.remove(second)
            return model, True
        return model, False

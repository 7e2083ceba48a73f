"""FixedPoint: a list of rewrites applied in turn, again and again, until none changes the graph.

Streamlining a network with shortcuts is not one pass per rewrite: a join can only be folded once
the thresholds of both its branches exist, and the next block's branch thresholds only once that
join is folded. The rewrites in the list each match only what is ready, so repeating the list
reaches the state where each has done all it can.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import SortGraph

#: passes of the whole list before it counts as a bug (a rewrite that matches its own output)
MAX_ROUNDS = 1000


class FixedPoint(Transformation):
    def __init__(self, transforms: list[Transformation]) -> None:
        super().__init__()
        self.transforms = transforms

    def apply(self, model: ModelWrapper):
        changed_any = False
        for _ in range(MAX_ROUNDS):
            changed = False
            for t in self.transforms:
                model, step = t.apply(model)
                if step:
                    model = model.transform(SortGraph(), make_deepcopy=False, cleanup=False)
                changed |= step
            if not changed:
                return model, changed_any
            changed_any = True
        raise RuntimeError(f"{[type(t).__name__ for t in self.transforms]} reached no fixed point")

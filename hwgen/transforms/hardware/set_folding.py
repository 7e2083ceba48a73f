"""SetFolding: choose PE/SIMD per layer for a target cycles-per-frame with the least hardware.

    MVU(PE=1, SIMD=1)   =>   MVU(PE=p, SIMD=s)   with (MH/p)*(MW/s) <= target, minimal est_luts

Every divisor pair is tried (layers have few divisors), so the choice is the cheapest one by the
unit's own LUT estimate, not a greedy doubling. A layer that cannot reach the target even fully
parallel gets full parallelism; the report then shows it as the bottleneck.
"""

from __future__ import annotations

import math

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.ops import FOLDING, unit_of


def divisors(n: int | list[int]) -> list[int]:
    """The divisors of n; of a list of dimensions (a concatenation's inputs), the common ones."""
    n = math.gcd(*n) if isinstance(n, (list, tuple)) else n
    return [d for d in range(1, n + 1) if n % d == 0]


class SetFolding(Transformation):
    def __init__(self, target_cycles: int) -> None:
        super().__init__()
        self.target_cycles = int(target_cycles)

    def apply(self, model: ModelWrapper):
        changed = False
        for node in model.graph.node:
            knobs = FOLDING.get(node.op_type)
            if knobs is None:
                continue
            op = getCustomOp(node)
            before = tuple(op.get_nodeattr(attr) for attr, _ in knobs)
            best = None
            base = unit_of(model, node)  # its arrays read and checked once
            for combo in self._combos(op, knobs):
                unit = base.refolded(**{attr: value for (attr, _), value in zip(knobs, combo)})
                cycles = unit.est_cycles()
                # meet the target with the fewest LUTs; failing that, get as close as possible
                cost = (0, unit.est_luts(), unit.est_brams()) if cycles <= self.target_cycles else (1, cycles, 0)
                if best is None or cost < best[0]:
                    best = (cost, combo)
            for (attr, _), value in zip(knobs, best[1]):
                op.set_nodeattr(attr, value)
            changed |= tuple(best[1]) != before
        return model, changed

    @staticmethod
    def _combos(op, knobs) -> list[tuple[int, ...]]:
        combos: list[tuple[int, ...]] = [()]
        for _, dim in knobs:
            combos = [c + (d,) for c in combos for d in divisors(op.get_nodeattr(dim))]
        return combos

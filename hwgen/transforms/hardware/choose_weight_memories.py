"""ChooseWeightMemories: where each MVU's weights live, once folding has fixed their memory's shape.

    MVU(weights_loaded=0)  =>  MVU(weights_loaded=1, weights_in_uram=1)     "auto", on a URAM part,
                                                                            where that saves BRAM
    MVU(weights_loaded=0)  =>  MVU(weights_loaded=1, weights_in_uram=u)     "loaded": every MVU

"rom" leaves every weight memory an initialised ROM (contents in the bitstream). A loaded memory
is a RAM the weight stream fills after reset (`hwgen.units.weight_stream`); UltraRAM must be
loaded, having no contents in the bitstream. "auto" moves the weight memories that `uram_choice`
picks for the part (the same rule as the parts table of `report.json`), so the build for an
UltraScale+ part is what its row of that table estimates. Weights that folding put in LUTs
(`weights_in_luts`) stay there.
"""

from __future__ import annotations

import dataclasses

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.fit import uram_choice
from hwgen.ops import HARDWARE_OPS, unit_of
from hwgen.parts import Part

#: ops whose unit can load its weights after reset (derived from the unit classes' fields)
LOADING_OPS = frozenset(name for name, op in HARDWARE_OPS.items()
                        if "weights_loaded" in {f.name for f in dataclasses.fields(op.unit_cls)})


class ChooseWeightMemories(Transformation):
    def __init__(self, mode: str, part: Part) -> None:
        super().__init__()
        self.mode, self.part = mode, part

    def apply(self, model: ModelWrapper):
        if self.mode != "loaded" and not self.part.uram:
            return model, False  # ROMs, as lowering made them: nothing to choose
        nodes = [n for n in model.graph.node if n.op_type in LOADING_OPS]
        changed = False
        for node, (load, uram) in zip(nodes, placements([unit_of(model, n) for n in nodes], self.mode, self.part)):
            op = getCustomOp(node)
            for name, value in (("weights_loaded", int(load)), ("weights_in_uram", int(uram))):
                if op.get_nodeattr(name) != value:
                    op.set_nodeattr(name, value)
                    changed = True
        return model, changed


def placements(units: list, mode: str, part: Part) -> list[tuple[bool, bool]]:
    """(loaded after reset, in UltraRAM) for each of `units` (of `LOADING_OPS`), by `mode` on `part`."""
    in_uram = [False] * len(units)
    if part.uram and mode != "rom":  # weights that folding put in LUTs stay there
        candidates = [i for i, u in enumerate(units) if u.ram_weight_memories()]
        chosen = uram_choice([units[i].ram_weight_memories()[0] for i in candidates], part.uram)
        for i, c in zip(candidates, chosen):
            in_uram[i] = c
    loaded = [True] * len(units) if mode == "loaded" else in_uram
    return list(zip(loaded, in_uram))


def placed(units: list, mode: str, part: Part) -> list:
    """`units` with their weights where `ChooseWeightMemories` puts them (units of other ops as
    they are): the estimates of a folding without rewriting its graph."""
    loading = [i for i, u in enumerate(units) if "weights_loaded" in {f.name for f in dataclasses.fields(u)}]
    if mode != "loaded" and not part.uram:
        return list(units)
    out = list(units)
    for i, (load, uram) in zip(loading, placements([units[i] for i in loading], mode, part)):
        out[i] = dataclasses.replace(units[i], weights_loaded=bool(load), weights_in_uram=bool(uram))
    return out

"""ChooseWeightMemories: where each MVU's weights live, once folding has fixed their memory's shape.

    MVU(weights_loaded=0)  =>  MVU(weights_loaded=1, weights_in_uram=1)     "auto", on a URAM part,
                                                                            where that saves BRAM
    MVU(weights_loaded=0)  =>  MVU(weights_loaded=1, weights_in_uram=u)     "loaded": every MVU

    MVU(weights W, PE, SIMD)  =>  DramMVU(weights W, PE, SIMD, offset)      "dram": every MVU whose
                                                                            weight words fill whole
                                                                            bus words

"rom" leaves every weight memory an initialised ROM (contents in the bitstream). "dram" moves the
weights of each MVU (as folding shaped it) to DRAM, weight-stationary (`hwgen.units.dram_mvu`),
each image at the next 4 KB boundary after the last (`rtl/dram.bin` holds them all); an MVU whose weight word is
not a whole number of bus words, or whose weights folding put in LUTs (a few words), stays. A
loaded memory is a RAM the weight stream fills after reset (`hwgen.units.weight_stream`); UltraRAM must be
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
from hwgen.units.dram_mvu import can_stream
from hwgen.rtl.axi import BURST_BOUNDARY
from hwgen.transforms.graph import HWGEN_DOMAIN, make_node
from hwgen.ops import HARDWARE_OPS, unit_of
from hwgen.parts import Part

#: ops whose unit can load its weights after reset (derived from the unit classes' fields)
LOADING_OPS = frozenset(name for name, op in HARDWARE_OPS.items()
                        if "weights_loaded" in {f.name for f in dataclasses.fields(op.unit_cls)})


class ChooseWeightMemories(Transformation):
    def __init__(self, mode: str, part: Part, dram_bits: int = 64) -> None:
        super().__init__()
        self.mode, self.part, self.dram_bits = mode, part, dram_bits

    def apply(self, model: ModelWrapper):
        if self.mode in ("dram", "frame"):  # "frame": `UseFrameMVUs` takes the DramMVUs on
            return _to_dram(model, self.dram_bits)
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


def _to_dram(model: ModelWrapper, bus_bits: int) -> tuple[ModelWrapper, bool]:
    """Every MVU whose weights can stream from DRAM over a `bus_bits` bus becomes a DramMVU, its
    image after the others' (4 KB aligned)."""
    return model, move_to_dram(model, None, bus_bits)


def move_to_dram(model: ModelWrapper, passes: dict[str, int] | None, bus_bits: int) -> bool:
    """The MVUs named in `passes` (None: every one that can, in one pass) become DramMVUs reading
    their weights over a `bus_bits` bus in that many passes a frame, each image at the next 4 KB
    boundary after the others'. An MVU whose weights folding put in LUTs stays, and so, where
    every MVU is asked for (`passes` None: `--weight-memory dram`), does one whose weight word is
    not a whole number of bus words (its folding would waste bandwidth on padding; folding for
    `auto` weighs that and names the ones to move, padded or not); whether any moved."""
    offset = dram_end(model)
    changed = False
    for index, node in enumerate(list(model.graph.node)):
        if node.op_type != "MVU" or (passes is not None and node.name not in passes):
            continue
        unit = unit_of(model, node)
        if not can_stream(unit, bus_bits, padded=passes is not None):
            continue
        attrs = {name: getattr(unit, name)
                 for name in ("MW", "MH", "PE", "SIMD", "out_bias", "vectors_per_frame", "products_in_luts",
                                  "packed_products")}
        attrs.update({name: getattr(unit, name).name for name in ("input_dtype", "weight_dtype", "output_dtype")})
        dram = make_node("DramMVU", list(node.input), list(node.output), domain=HWGEN_DOMAIN, name=node.name,
                         data_bits=bus_bits, offset=offset, passes=1 if passes is None else passes[node.name],
                         **attrs)
        model.graph.node.remove(node)
        model.graph.node.insert(index, dram)
        offset = aligned(offset + unit_of(model, dram).dram_image_bytes())
        changed = True
    return changed


def aligned(offset: int) -> int:
    """`offset` up to the next 4 KB boundary: every DRAM image starts at one, so no burst crosses one."""
    return -(-offset // BURST_BOUNDARY) * BURST_BOUNDARY


def dram_units(model: ModelWrapper) -> list:
    """The units of `model` that hold an image in DRAM (weights, a FIFO's ring), in graph order."""
    return [unit_of(model, n) for n in model.graph.node if n.op_type in ("DramMVU", "FrameMVU", "DramFifo")]


def dram_end(model: ModelWrapper) -> int:
    """The first 4 KB boundary after every DRAM image of `model`."""
    return max((aligned(u.offset + u.dram_image_bytes()) for u in dram_units(model)), default=0)

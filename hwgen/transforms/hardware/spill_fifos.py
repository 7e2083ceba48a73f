"""SpillFifos: the FIFOs at joins that block RAM cannot hold, into DRAM.

    fork -> ... branch ... -> join              fork -> ... branch ... -> join
      \\-> StreamingFifo(depth=d) -/      =>      \\-> DramFifo(depth=d, data_bits, offset) -/

A shortcut beside a branch that holds rows of a frame (a window generator at 14x14 by 512
channels) needs a FIFO of a fifth of its frame: 10 BRAM18 for an 8-bit ReActNet-A block at the
slowest folding, 146 in all, more than the xc7z020 has left beside its compute units. A
`DramFifo` holds it in a ring of DRAM for the bandwidth of writing and reading its stream once
(`DramFifo.dram_bytes_per_frame`), with no block RAM. Only FIFOs at a join's input spill (along
a chain two beats do: `SizeFifos`), deeper than the ring's own buffers on chip (`BUFFER_WORDS`),
and only where a beat and its valid bit fit a bus word.

`mode` (`BuildConfig.fifo_memory`): "dram" spills every such FIFO; "chip" none; "auto" those in
block RAM, the most first, that the design needs gone to fit `part` (its compute units and FIFOs
by the estimates), when asked to fit (`to_fit`: a build folding for a fixed target). A build
folding for the fastest rate that fits (`--target-fps max`) first folds again to leave its FIFOs
their block RAM (`hwgen.builder`), and asks this to fit only where no folding does. The rings lie
after every other DRAM image, each on a multiple of its size, so that a word's address is the
ring's base with the word's index in its low bits (no adder: `DramFifo.dram_alignment`).
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.fit import part_fit
from hwgen.ops import unit_of
from hwgen.parts import Part
from hwgen.transforms.graph import HWGEN_DOMAIN, make_node
from hwgen.transforms.hardware.choose_weight_memories import dram_end
from hwgen.transforms.hardware.size_fifos import join_fifos
from hwgen.units.dram_fifo import BUFFER_WORDS, FLUSH_CYCLES


class SpillFifos(Transformation):
    """Spill FIFOs at joins to DRAM over a `bus_bits` bus, as `mode` says (see the module doc):
    in "auto" only when asked `to_fit` and the design would not fit `part`."""

    def __init__(self, mode: str, part: Part, bus_bits: int, to_fit: bool) -> None:
        super().__init__()
        self.mode, self.part, self.bus_bits, self.to_fit = mode, part, bus_bits, to_fit

    def apply(self, model: ModelWrapper):
        if self.mode == "chip" or (self.mode == "auto" and not self.to_fit):
            return model, False
        candidates = sorted(spillable(model, self.bus_bits), key=lambda n: -unit_of(model, n).est_brams())
        if self.mode == "auto":
            candidates = [n for n in candidates if unit_of(model, n).est_brams()]
            units = [unit_of(model, n) for n in model.graph.node]
            beyond = part_fit(units, max(u.est_cycles() for u in units), self.part)["est_bram18"] - self.part.bram18
            chosen = []
            for node in candidates:
                if beyond <= 0:
                    break
                chosen.append(node)
                beyond -= unit_of(model, node).est_brams()
            candidates = chosen if beyond <= 0 else []  # spilling all it can would not fit it either
        spill(model, candidates, self.bus_bits)
        return model, False


def spillable(model: ModelWrapper, bus_bits: int) -> list:
    """The FIFO nodes at joins deeper than a `DramFifo`'s buffers on chip whose beats (with a
    valid bit) fit a `bus_bits` word."""
    names = set(join_fifos(model))
    nodes = []
    for node in model.graph.node:
        if node.name not in names:
            continue
        fifo = unit_of(model, node)
        if fifo.depth > BUFFER_WORDS and fifo.spec.width + 1 <= bus_bits:
            nodes.append(node)
    return nodes


def spill(model: ModelWrapper, nodes: list, bus_bits: int) -> None:
    """Each of `nodes` (StreamingFifos) becomes a DramFifo of the same depth, flushing a part-full
    word after twice its stream's gap between beats at the design's rate (and 8 cycles), at most
    `FLUSH_CYCLES`. The rings follow every DRAM image before them, each on a multiple of its size
    (`DramFifo.dram_alignment`), the largest first, so that none leaves a gap before the next."""
    frame = max(unit_of(model, n).est_cycles() for n in model.graph.node)
    offset = dram_end(model)  # the FIFOs that become rings hold no DRAM image yet
    new: set[str] = set()
    for node in nodes:
        op = getCustomOp(node)
        attrs = {name: op.get_nodeattr(name) for name in ("dtype", "elems_per_beat", "beats_per_frame", "depth")}
        flush = min(FLUSH_CYCLES, 2 * -(-frame // attrs["beats_per_frame"]) + 8)
        ring = make_node("DramFifo", list(node.input), list(node.output), domain=HWGEN_DOMAIN,
                         name=node.name.replace("StreamingFifo", "DramFifo"), data_bits=bus_bits, offset=0,
                         flush_cycles=flush, **attrs)
        index = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(index, ring)  # a copy: the graph's own node is found by name below
        new.add(ring.name)
    placed = [n for n in model.graph.node if n.name in new]
    for ring in sorted(placed, key=lambda r: -unit_of(model, r).dram_alignment()):
        align = unit_of(model, ring).dram_alignment()
        offset = -(-offset // align) * align
        getCustomOp(ring).set_nodeattr("offset", offset)
        offset += unit_of(model, ring).dram_image_bytes()

"""SizeFifos: every FIFO as deep as the schedule needs, measured in Verilator.

    StreamingFifo(depth=2) on every edge     =>     StreamingFifo(depth=d_e), d_e = most beats edge e held

A chain of smooth units never holds more than two beats per edge. A fork that meets its own
branch again at a join does: while a branch's window generator fills the rows it needs, the
shortcut beside it must hold everything the fork has sent. Too little there and the fork stalls,
the branch starves and the join waits forever (a deadlock); a little too little and the join
stalls. Depths are measured rather than modelled: the design is stitched with every FIFO a frame
deep, three frames of random input run through it in Verilator without stalls, and each FIFO
gets the most beats it held plus one. With that depth no FIFO ever fills, so the sized design
runs the measured schedule exactly, at the rate of its slowest unit; and since the measured
occupancy is at least the structural lag of each path, no stall pattern can deadlock it.

Only graphs with a fork are measured (chains keep the depth they have); a hand depth from the
folding file is applied after this.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.ops import unit_of
from hwgen.sim.stimulus import random_frames
from hwgen.streams import beat_bytes, pack_beats, to_wire

FIFO = "StreamingFifo"
#: frames run while measuring: the first fills the pipeline, the later ones are steady state
MEASURE_FRAMES = 3


def _fingerprint(model: ModelWrapper) -> str:
    return hashlib.sha256(model.model.SerializeToString()).hexdigest()


class SizeFifos(Transformation):
    def __init__(self, cache_dir: Path, top: str = "hwgen_accel") -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir)
        self.top = top
        self._sized: set[str] = set()

    def apply(self, model: ModelWrapper):
        if _fingerprint(model) in self._sized or not any(n.op_type == "DuplicateStreams" for n in model.graph.node):
            return model, False
        levels = measure_levels(model, self.cache_dir, self.top)
        changed = False
        for node in model.graph.node:
            if node.op_type != FIFO:
                continue
            op = getCustomOp(node)
            depth = max(2, levels[node.name] + 1)
            if op.get_nodeattr("depth") != depth:
                op.set_nodeattr("depth", depth)
                changed = True
        self._sized.add(_fingerprint(model))
        return model, changed


def measure_levels(model: ModelWrapper, cache_dir: Path, top: str) -> dict[str, int]:
    """The most beats each FIFO of `model` holds when every FIFO is a frame deep (Verilator run)."""
    from hwgen.rtl.stitch import stitch
    from hwgen.sim import build as build_sim
    from hwgen.sim import run as run_sim

    probe = ModelWrapper(type(model.model).FromString(model.model.SerializeToString()))
    for node in probe.graph.node:
        if node.op_type == FIFO:
            op = getCustomOp(node)
            op.set_nodeattr("depth", max(op.get_nodeattr("depth"), unit_of(probe, node).beats_per_frame + 2))
    with tempfile.TemporaryDirectory(prefix="hwgen-fifo-") as tmp:
        design = stitch(probe, Path(tmp) / "rtl", top)
        config = "\n".join(["`verilator_config", f'public_flat_rd -module "{top}" -var "edge*_tvalid"',
                            f'public_flat_rd -module "{top}" -var "edge*_tready"']) + "\n"
        exe = build_sim(Path(tmp) / "rtl", top, cache_dir, config=config, quick=True)
    edge_of = {e.tensor: e.name for e in design.edges}
    levels = {n.name: (f"TOP.{top}.{edge_of[n.input[0]]}", f"TOP.{top}.{edge_of[n.output[0]]}")
              for n in probe.graph.node if n.op_type == FIFO}
    spec_in, spec_out = design.input, design.output
    codes = to_wire(random_frames(spec_in, MEASURE_FRAMES, seed=0), spec_in.dtype)
    beats = pack_beats(codes, spec_in.elem_bits, spec_in.elems_per_beat)
    result = run_sim(exe, beats, spec_out.beats_per_frame, beat_bytes(spec_out.width), levels=levels)
    return result.max_levels

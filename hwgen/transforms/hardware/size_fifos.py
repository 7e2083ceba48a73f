"""SizeFifos: every FIFO as deep as the schedule needs, measured in Verilator or modelled.

    StreamingFifo(depth=2) on every edge     =>     StreamingFifo(depth=d_e)

Two beats per edge keep a chain of units that send and take beats evenly at full rate. Two
things need more:

- a unit that sends in bursts (`Unit.output_burst`: a pool sends a row of window results on the
  last image row of its windows and nothing on the others; a window maximum a window's result, one
  beat per channel fold, on its last position): the FIFO after it holds the burst, 2 + burst
  beats, or the pool stalls and with it every unit before it, though each runs at the same rate
  on average (a balanced Bi-Real stem lost 8 % there at depth 2);
- a fork that meets its own branch again at a join: while a branch's window generator fills the
  rows it needs, the shortcut beside it must hold everything the fork has sent. Too little there
  and the fork stalls, the branch starves and the join waits forever (a deadlock); a little too
  little and the join stalls.

Two ways to the join depths, chosen by `mode` ("auto": measured where the design has joins and
is small enough to simulate quickly, modelled otherwise):

- measured: the design is stitched with every FIFO at a join's input deep (a frame, or twice the
  modelled depth), three frames of random input run through it in Verilator without stalls, each
  frame offered over the cycles the slowest unit takes for one (so that no FIFO fills with a
  backlog of frames the source sent early), and each such FIFO gets the most beats it held plus
  one. With that depth it never fills, so the sized design runs the measured schedule exactly;
  and since the measured occupancy is at least the structural lag of each path, no stall pattern
  can deadlock it. The FIFOs along chains keep their modelled depths (a producer faster than its
  reader fills any FIFO, so their occupancy says nothing of their need); the run checks the rate
  too, and should it fall short, the chain FIFOs found full are doubled and the run repeated.
- modelled: each unit says the most and the least of an input frame it holds before it answers
  (`Unit.held_fraction`, `Unit.least_held_fraction`: a window generator its buffer or its first
  window, a matrix-vector unit three vectors or one); summed along each path from where the
  join's inputs part, they bracket how far each input lags that point, and the FIFO at each input
  gets the most it can lead the join's other inputs (their most lag less its least), an eighth
  more, the beats the join takes from its other inputs while this one waits its turn
  (`Unit.turn_beats`: a concat's other parts of a pixel), the burst of the unit before it and 8
  beats more. No simulation, and never short of what a run measures (checked by the tests); for
  networks too large to simulate at build time.

The stall-free cycles per frame then equal the slowest unit's estimate, at any folding target
(`tests/test_rates.py` sweeps them). A hand depth from the folding file is applied after this.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError
from hwgen.ops import unit_of
from hwgen.rtl.axi import read_dram
from hwgen.sim.stimulus import random_frames
from hwgen.streams import beat_bytes, pack_beats, to_wire
from hwgen.units.weight_stream import read_weight_stream

FIFO = "StreamingFifo"
#: frames run while measuring: the first fills the pipeline, the later ones are steady state
MEASURE_FRAMES = 3
#: runs with deeper join FIFOs before giving up on one that keeps filling
MEASURE_TRIES = 3
#: "auto" measures designs whose measuring run is at most this many cycles and whose units this many
AUTO_MAX_CYCLES = 3_000_000
#: a modelled join FIFO holds the largest possible lead, an eighth more, and a few beats for the
#: pipeline registers of the units between (none of which the fractions count)
MODEL_MARGIN = 1.125
MODEL_SLACK_BEATS = 8
AUTO_MAX_UNITS = 400
#: a FIFO along a chain of units that send evenly: two beats keep it at full rate
CHAIN_DEPTH = 2
AUTO_MAX_BRAMS = 300


#: metadata key naming how the FIFOs were sized ("measured" or "modelled"), read by the report
SIZING_KEY = "hwgen_fifo_sizing"


def _fingerprint(model: ModelWrapper) -> str:
    return hashlib.sha256(model.model.SerializeToString()).hexdigest()


class SizeFifos(Transformation):
    def __init__(self, cache_dir: Path, top: str = "hwgen_accel", mode: str = "auto") -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir)
        self.top = top
        self.mode = mode
        self._sized: set[str] = set()

    def apply(self, model: ModelWrapper):
        if _fingerprint(model) in self._sized:
            return model, False
        modelled = modelled_depths(model)
        # "auto" measures a small design with joins; a chain has nothing but bursts to size
        joins = bool(join_fifos(model))
        mode = self.mode if self.mode != "auto" else ("measured" if joins and small_enough(model) else "modelled")
        depths = measured_depths(model, modelled, self.cache_dir, self.top) if mode == "measured" else modelled
        model.set_metadata_prop(SIZING_KEY, mode)
        changed = False
        for node in model.graph.node:
            if node.op_type != FIFO:
                continue
            op = getCustomOp(node)
            if op.get_nodeattr("depth") != depths[node.name]:
                op.set_nodeattr("depth", depths[node.name])
                changed = True
        self._sized.add(_fingerprint(model))
        return model, changed


def small_enough(model: ModelWrapper) -> bool:
    """Whether measuring the design is quick: its units, memories and frames are few."""
    units = [unit_of(model, n) for n in model.graph.node]
    cycles = MEASURE_FRAMES * max(u.est_cycles() for u in units)
    return cycles <= AUTO_MAX_CYCLES and len(units) <= AUTO_MAX_UNITS and sum(u.est_brams() for u in units) <= AUTO_MAX_BRAMS


def modelled_depths(model: ModelWrapper) -> dict[str, int]:
    """Each FIFO's depth from the units' held fractions (see the module docstring)."""
    nodes = list(model.graph.node)
    streams = [getCustomOp(n).stream_inputs() for n in nodes]
    lead: dict[str, float] = {}  # join input -> the most it can lead the join's other inputs (frames)
    waits: dict[str, int] = {}
    for node, fork in _joins_and_forks(model, nodes, streams):
        most, least = _lags_from(model, fork, nodes, streams)
        inputs = getCustomOp(node).stream_inputs()
        unit = unit_of(model, node)
        for i, t in enumerate(inputs):
            others = max(most[u] for u in inputs if u != t)
            lead[t] = max(lead.get(t, 0.0), others - least[t])
            waits[t] = max(waits.get(t, 0), unit.turn_beats(i))
    depths = {}
    for node in nodes:
        if node.op_type != FIFO:
            continue
        depth = getCustomOp(node).get_nodeattr("depth")
        producer = model.find_producer(node.input[0])
        burst = math.ceil(unit_of(model, producer).output_burst()) if producer is not None else 0
        if node.output[0] in lead:
            need = lead[node.output[0]] * unit_of(model, node).beats_per_frame
            depth = max(depth, math.ceil(need * MODEL_MARGIN) + waits[node.output[0]] + MODEL_SLACK_BEATS + burst)
        depths[node.name] = max(depth, CHAIN_DEPTH + burst)
    return depths


def _joins_and_forks(model: ModelWrapper, nodes: list, streams: list[list[str]]) -> list[tuple]:
    """Each join node with the tensor where its inputs part: the last tensor on every path from
    the graph input to the join (its immediate dominator), so that the paths from there to the
    join's inputs are all the join waits on."""
    order = {model.graph.input[0].name: 0}
    dominators: dict[str, frozenset[str]] = {model.graph.input[0].name: frozenset([model.graph.input[0].name])}
    joins = []
    for node, inputs in zip(nodes, streams):
        common = frozenset.intersection(*(dominators[t] for t in inputs))
        if len(inputs) > 1:
            joins.append((node, max(common, key=order.__getitem__)))
        for t in node.output[: getCustomOp(node).stream_counts()[1]]:
            order[t] = len(order)
            dominators[t] = common | {t}
    return joins


def _lags_from(model: ModelWrapper, fork: str, nodes: list, streams: list[list[str]]) -> tuple[dict, dict]:
    """The most and the least every tensor downstream of `fork` can lag it, in frames."""
    most, least = {fork: 0.0}, {fork: 0.0}
    for node, inputs in zip(nodes, streams):
        if not all(t in most for t in inputs):
            continue
        unit = unit_of(model, node)
        for t in node.output[: getCustomOp(node).stream_counts()[1]]:
            most[t] = max(most[i] for i in inputs) + unit.held_fraction()
            least[t] = max(least[i] for i in inputs) + unit.least_held_fraction()
    return most, least


def join_fifos(model: ModelWrapper) -> list[str]:
    """The FIFOs that feed a join (a unit with more than one stream input): the only ones whose
    depth the schedule decides. Every other FIFO passes a chain at full rate at any depth >= 2."""
    names = []
    for node in model.graph.node:
        if node.op_type == FIFO:
            consumer = model.find_consumer(node.output[0])
            if consumer is not None and len(getCustomOp(consumer).stream_inputs()) > 1:
                names.append(node.name)
    return names


def measured_depths(model: ModelWrapper, modelled: dict[str, int], cache_dir: Path, top: str) -> dict[str, int]:
    """Every FIFO's depth from Verilator runs paced at the slowest unit's rate. The join FIFOs are
    deep (a frame, or twice the modelled depth if that is more; one that the run filled is
    measured again twice as deep) and get the most they held, plus one. The FIFOs along chains
    keep their modelled depth (a producer faster than its reader fills any depth, so how full they
    got says nothing of what they need), unless the run fell short of the rate: then each that was
    full is doubled and the run repeated."""
    depths = dict(modelled)
    joins = join_fifos(model)
    probe = dict(depths)
    for name in joins:
        node = model.get_node_from_name(name)
        probe[name] = max(2 * modelled[name] + 16, unit_of(model, node).beats_per_frame + 2)
    period = max(unit_of(model, n).est_cycles() for n in model.graph.node)
    for _ in range(MEASURE_TRIES):
        levels, cycles = measure_levels(model, cache_dir, top, probe)
        full = [name for name in joins if levels[name] >= probe[name] - 1]
        slow = cycles > period + 1
        if slow and not full:  # a chain FIFO too shallow for a burst: the ones found full grow
            full = [name for name in depths if name not in joins and levels[name] >= probe[name]]
        if not full:
            break
        for name in full:
            probe[name] *= 2
    else:
        raise HwgenError(f"still full at {probe[full[0]]} beats after {MEASURE_TRIES} runs"
                         f"{f' and the design short of {period} cycles per frame' if slow else ''}; size it by "
                         "hand in the folding file or build with fifo_sizing='modelled'", where=f"FIFO '{full[0]}'")
    return {name: max(depths[name], levels[name] + 1) if name in joins else probe[name] for name in depths}


def measure_levels(model: ModelWrapper, cache_dir: Path, top: str, probe: dict[str, int]) -> tuple[dict[str, int], float]:
    """The most beats each FIFO of `model` holds in a Verilator run without stalls, each FIFO
    `probe[name]` deep, the input paced at the slowest unit's rate; and the cycles per frame the
    run gave."""
    from hwgen.rtl.stitch import stitch
    from hwgen.sim import build as build_sim
    from hwgen.sim import run as run_sim
    from hwgen.sim.verilator import DramImage

    deep = ModelWrapper(type(model.model).FromString(model.model.SerializeToString()))
    for node in deep.graph.node:
        if node.op_type == FIFO:
            getCustomOp(node).set_nodeattr("depth", probe[node.name])
    with tempfile.TemporaryDirectory(prefix="hwgen-fifo-") as tmp:
        design = stitch(deep, Path(tmp) / "rtl", top)
        config = "\n".join(["`verilator_config", f'public_flat_rd -module "{top}" -var "edge*_tvalid"',
                            f'public_flat_rd -module "{top}" -var "edge*_tready"']) + "\n"
        exe = build_sim(Path(tmp) / "rtl", top, cache_dir, config=config, quick=True)
        weights = read_weight_stream(Path(tmp) / "rtl", design.weight_beats)
        dram = read_dram(Path(tmp) / "rtl", design.dram_bytes)
    edge_of = {e.tensor: e.name for e in design.edges}
    levels = {n.name: (f"TOP.{top}.{edge_of[n.input[0]]}", f"TOP.{top}.{edge_of[n.output[0]]}")
              for n in deep.graph.node if n.op_type == FIFO}
    spec_in, spec_out = design.input, design.output
    codes = to_wire(random_frames(spec_in, MEASURE_FRAMES, seed=0), spec_in.dtype)
    beats = pack_beats(codes, spec_in.elem_bits, spec_in.elems_per_beat)
    period = max(unit_of(deep, n).est_cycles() for n in deep.graph.node)
    result = run_sim(exe, beats, spec_out.beats_per_frame, beat_bytes(spec_out.width), levels=levels, pace=period,
                     weights=weights, dram=None if dram is None else DramImage(dram))
    return result.max_levels, result.cycles_per_frame

"""A build is a list of plain steps, each `step(state) -> state`, with an ONNX checkpoint after each.

    load -> ingest -> streamline -> partition -> to_hardware -> fold -> plumbing -> rtl -> report

The build is written into a sibling folder, which replaces OUT only when every step is done: a
build that fails at any step leaves no half-written folder, and an earlier build in OUT intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.general import GiveUniqueNodeNames

from hwgen.config import BuildConfig, ModelReference, file_sha256
from hwgen.deploy.boards import lookup_board
from hwgen.deploy.package import write_deploy
from hwgen.deploy.vivado import write_flow
from hwgen.errors import HwgenError
from hwgen.frontend import check_known_ops, load_onnx, prepare
from hwgen.host import StreamInfo, write_accelerator_json
from hwgen.fit import part_fit
from hwgen.ops import PLUMBING_OPS, unit_of
from hwgen.parts import lookup_part
from hwgen.progress import NO_PROGRESS, Progress
from hwgen.report import build_report, write_json_atomically
from hwgen.reportpage import write_report_page
from hwgen.rtl.stitch import stitch
from hwgen.transforms.graph import declare_domains
from hwgen.transforms.hardware.set_folding import MAX_BRAM_SHARE, MAX_LUT_SHARE, SetFolding
from hwgen.transforms.hardware.spill_fifos import spillable
from hwgen.transforms.partition import split_host_and_accelerator
from hwgen.transforms.pipeline import (
    FOLD, PLUMBING, STREAMLINE, TO_HARDWARE, RewriteFailure, apply_all, check_stage, has_dram,
)
from hwgen.units.dram_fifo import DramFifo
from hwgen.units.fifo import StreamingFifo


#: the model as given, the first checkpoint of every build
INPUT_CHECKPOINT = "graphs/00_input.onnx"


@dataclass
class BuildState:
    """What flows between steps: the graph, and what earlier steps set aside."""

    model: ModelWrapper
    cfg: BuildConfig
    out: Path
    model_input_shape: list[int] = field(default_factory=list)
    model_output_shape: list[int] = field(default_factory=list)
    model_input_name: str = ""
    model_input_dtype: str = "FLOAT32"
    report: dict | None = None
    #: block RAM the folding leaves to the FIFOs (`step_plumbing`, folding for the fastest rate)
    reserved_bram18: int = 0
    #: DRAM bytes a frame the folding leaves to the FIFOs spilled there, and LUTs (likewise)
    reserved_dram_bytes: int = 0
    reserved_luts: int = 0


def step_streamline(s: BuildState) -> BuildState:
    s.model = apply_all(s.model, STREAMLINE)
    check_stage(s.model, "streamline")
    return s


def step_partition(s: BuildState) -> BuildState:
    parts = split_host_and_accelerator(s.model)
    declare_domains(parts.pre).save(str(s.out / "host_pre.onnx"))
    declare_domains(parts.post).save(str(s.out / "host_post.onnx"))
    s.model = parts.accel
    check_stage(s.model, "partition")
    return s


def step_to_hardware(s: BuildState) -> BuildState:
    s.model = apply_all(s.model, TO_HARDWARE)
    check_stage(s.model, "to_hardware")
    return s


def step_fold(s: BuildState) -> BuildState:
    s.model = apply_all(s.model, FOLD(s.cfg, reserved_bram18=s.reserved_bram18, reserved_dram_bytes=s.reserved_dram_bytes,
                                      reserved_luts=s.reserved_luts))
    check_stage(s.model, "fold")
    return s


#: times a build folding for the fastest rate folds again to leave block RAM to its FIFOs
MAX_REFOLDS = 2


def step_plumbing(s: BuildState) -> BuildState:
    """Plumbing; and where the build folds for the fastest rate that fits (`--target-fps max`)
    and the FIFOs plumbing sized take block RAM the compute units left no room for, or plumbing
    takes more LUTs than its share, folding again from the hardware graph with those reserved
    (`_fold_beside_fifos`), then plumbing again: folding counts the compute units only, the
    FIFOs' depths and the converters come after."""
    s.model = apply_all(s.model, PLUMBING(s.cfg))
    need, fifos = _block_ram_need(s.model, s.cfg)
    part = lookup_part(s.cfg.fit_part)
    luts = _plumbing_luts(s.model, part.luts)
    if s.cfg.cycles_target is None and ((need > part.bram18 and fifos > s.reserved_bram18) or luts > s.reserved_luts):
        _fold_beside_fifos(s, fifos, luts)
    check_stage(s.model, "plumbing")
    return s


def _fold_beside_fifos(s: BuildState, fifos: int, luts: int = 0) -> None:
    """Fold again, leaving block RAM to the FIFOs, and the LUTs that plumbing takes beyond its
    share (`luts`: the converters and FIFOs beside wide units can take more) off the compute
    units', and plumb: first with what plumbing took, as long as it grows (`MAX_REFOLDS`). Where
    no folding leaves that much block RAM (the FIFOs were sized beside a fast folding, and a
    shortcut beside a weight-stationary unit holds three of its passes), with the most that any
    folding leaves (the slowest, whose passes are shortest);
    where the FIFOs do not fit even then, or no folding fits beside the LUTs plumbing takes, and
    the build has a DRAM (`--fifo-memory auto`), with the FIFOs at joins in DRAM (`SpillFifos`),
    leaving block RAM to the others and the DRAM the bandwidth and the LUTs of those (those that
    stay counted beside the slowest folding where beside the first none fits: a faster folding's
    beats are wider than a ring takes); else an error that says what each side takes. Sets `s.model`,
    `s.reserved_bram18`, `s.reserved_dram_bytes` and `s.reserved_luts`; the fold checkpoint is
    the folding kept."""
    part = lookup_part(s.cfg.fit_part)
    names = [name for name, _ in STEPS]
    hardware = ModelWrapper(str(s.out / "graphs" / f"{names.index('to_hardware') + 2:02d}_to_hardware.onnx"))
    fold_path = s.out / "graphs" / f"{names.index('fold') + 2:02d}_fold.onnx"

    def attempt(reserved: int, dram_bytes: int = 0, luts: int = 0) -> tuple[ModelWrapper, ModelWrapper, int, int]:
        """(folded, plumbed, block RAM needed, FIFOs' block RAM) with `reserved` left to the FIFOs
        (and `dram_bytes` of DRAM a frame and `luts`: then plumbing spills FIFOs to fit the part)."""
        # apply_all works on copies: the hardware graph and the folded one stay as they are
        folded = step_fold(BuildState(hardware, s.cfg, s.out, reserved_bram18=reserved,
                                      reserved_dram_bytes=dram_bytes, reserved_luts=luts)).model
        plumbed = apply_all(folded, PLUMBING(s.cfg, spill_to_fit=dram_bytes > 0))
        return (folded, plumbed, *_block_ram_need(plumbed, s.cfg))

    def keep(folded: ModelWrapper, plumbed: ModelWrapper, reserved: int) -> None:
        declare_domains(folded).save(str(fold_path))
        s.model, s.reserved_bram18 = plumbed, reserved

    reserved = fifos
    try:
        for _ in range(MAX_REFOLDS):
            folded, plumbed, need, fifos = attempt(reserved, luts=luts)
            keep(folded, plumbed, reserved)
            s.reserved_luts, taken = luts, _plumbing_luts(plumbed, part.luts)
            if (need <= part.bram18 or fifos <= reserved) and taken <= luts:
                return
            if need > part.bram18:
                reserved = max(reserved, fifos)
            luts = max(luts, taken)
        return
    except HwgenError:
        least = _set_folding(s.cfg).least_block_ram(hardware)
        most = int(MAX_BRAM_SHARE * part.bram18) - least
        if (most <= 0 or most >= reserved) and not _may_spill(s.cfg):
            raise
    if 0 < most < reserved:
        try:
            folded, plumbed, need, fifos = attempt(most, luts=luts)
            if need <= part.bram18:
                keep(folded, plumbed, most)
                return
        except HwgenError:  # none beside the LUTs plumbing takes: the FIFOs to DRAM, where they may go
            if not _may_spill(s.cfg):
                raise
        if not _may_spill(s.cfg):
            raise HwgenError(f"no folding leaves its FIFOs their block RAM: at the slowest, the compute units take "
                             f"{least:,} BRAM18 and the FIFOs {fifos:,}, where the {part.device} has {part.bram18:,}",
                             where="--target-fps max")
    # the FIFOs at joins go to DRAM (`--fifo-memory auto`): fold leaving block RAM to the FIFOs
    # that stay and DRAM bandwidth to those that go, then plumb spilling them
    # (from the plumbing at hand, then from the one that spilled, as long as the rings take more)
    kept, spilled_bytes, luts = _spill_needs(s.model, s.cfg.dram_bits, part.luts)
    for refold in range(MAX_REFOLDS):
        try:
            folded, plumbed, need, fifos = attempt(kept, spilled_bytes, luts)
        except HwgenError:
            if refold:
                raise
            # the FIFOs that stay on chip were sized beside a faster folding (wider beats, which
            # a ring cannot take): what stays beside the slowest, whose FIFOs are narrower
            kept, spilled_bytes, luts = _spill_needs(_plumbed_at_slowest(s, hardware), s.cfg.dram_bits, part.luts)
            folded, plumbed, need, fifos = attempt(kept, spilled_bytes, luts)
        if need > part.bram18:
            raise HwgenError(f"no folding fits beside its FIFOs, even with those at joins in DRAM: the compute units "
                             f"and FIFOs take {need:,} BRAM18, where the {part.device} has {part.bram18:,}",
                             where="--target-fps max")
        keep(folded, plumbed, kept)
        s.reserved_dram_bytes, s.reserved_luts = spilled_bytes, luts
        rings = sum(unit_of(plumbed, n).dram_bytes_per_frame() for n in plumbed.graph.node if n.op_type == "DramFifo")
        taken = _plumbing_luts(plumbed, part.luts)
        if rings <= spilled_bytes and taken <= luts:
            return
        spilled_bytes, luts = max(rings, spilled_bytes), max(taken, luts)


def _plumbed_at_slowest(s: BuildState, hardware: ModelWrapper) -> ModelWrapper:
    """The hardware graph folded at the slowest folding of all and plumbed (no FIFO spilled)."""
    slowest = replace(s.cfg, target_fps=None, target_cycles=_set_folding(s.cfg).slowest_cycles(hardware))
    return apply_all(step_fold(BuildState(hardware, slowest, s.out)).model, PLUMBING(s.cfg))


def _set_folding(cfg: BuildConfig) -> SetFolding:
    """The folding transformation of `cfg`'s fold step (for its estimates of the slowest folding)."""
    return next(t for t in FOLD(cfg) if isinstance(t, SetFolding))


def _may_spill(cfg: BuildConfig) -> bool:
    """Whether `--fifo-memory auto` may put FIFOs at joins into DRAM (the build has one)."""
    return cfg.fifo_memory == "auto" and has_dram(cfg)


def _spill_needs(model: ModelWrapper, bus_bits: int, part_luts: int) -> tuple[int, int, int]:
    """For a plumbed design whose FIFOs at joins in block RAM may go to DRAM (all of them, at
    most): the block RAM of the FIFOs and converters that stay on chip in any case, the DRAM bytes
    a frame of those that go, and the LUTs that plumbing would then take beyond its share of a
    part of `part_luts`."""
    spilled = {node.name for node in spillable(model, bus_bits) if unit_of(model, node).est_brams()}
    rings = [DramFifo(**{f.name: getattr(unit_of(model, n), f.name) for f in fields(StreamingFifo)}, data_bits=bus_bits)
             for n in model.graph.node if n.name in spilled]
    kept = sum(unit_of(model, n).est_brams() for n in model.graph.node
               if n.op_type in PLUMBING_OPS and n.name not in spilled)
    luts = _plumbing_luts(model, part_luts) + sum(ring.est_luts() for ring in rings)
    return kept, sum(ring.dram_bytes_per_frame() for ring in rings), luts


def _plumbing_luts(model: ModelWrapper, part_luts: int) -> int:
    """The LUTs of a plumbed design's FIFOs, converters and fan-outs beyond plumbing's share of
    the part (`MAX_LUT_SHARE`)."""
    taken = sum(unit_of(model, n).est_luts() for n in model.graph.node if n.op_type in PLUMBING_OPS)
    return max(0, int(taken - (1 - MAX_LUT_SHARE) * part_luts))


def _block_ram_need(model: ModelWrapper, cfg: BuildConfig) -> tuple[int, int]:
    """(the plumbed design's BRAM18s on its part, those of its FIFOs and converters)."""
    units = [(node.op_type, unit_of(model, node)) for node in model.graph.node]
    part = lookup_part(cfg.fit_part)
    need = part_fit([u for _, u in units], max(u.est_cycles() for _, u in units), part)["est_bram18"]
    return need, sum(u.est_brams() for op, u in units if op in PLUMBING_OPS)


def step_rtl(s: BuildState) -> BuildState:
    rtl = s.out / "rtl"
    if rtl.exists():
        shutil.rmtree(rtl)
    design = stitch(s.model, rtl, s.cfg.top_name, s.cfg.dram_masters)
    g_in, g_out = s.model.graph.input[0].name, s.model.graph.output[0].name
    write_accelerator_json(
        s.out / "accelerator.json", design.top, s.model_input_shape, s.model_output_shape,
        StreamInfo.of(g_in, s.model.get_tensor_shape(g_in), design.input),
        StreamInfo.of(g_out, s.model.get_tensor_shape(g_out), design.output),
        s.model_input_name, s.model_input_dtype, design.modules,
        [{"name": e.name, "tensor": e.tensor, "producer": e.producer, "consumer": e.consumer} for e in design.edges],
        design.weight_beats, design.dram_bytes, design.dram_masters, design.dram_bits, design.dram_writers,
        design.dram_align,
    )
    return s


def step_report(s: BuildState) -> BuildState:
    board = None
    if s.cfg.board is not None:
        from hwgen.deploy.boards import lookup_board

        board = lookup_board(s.cfg.board)
    s.report = build_report(s.model, s.cfg.clock_mhz, s.cfg.cycles_target, lookup_part(s.cfg.fit_part), board)
    return s


STEPS: list[tuple[str, Callable[[BuildState], BuildState]]] = [
    ("streamline", step_streamline),
    ("partition", step_partition),
    ("to_hardware", step_to_hardware),
    ("fold", step_fold),
    ("plumbing", step_plumbing),
    ("rtl", step_rtl),
    ("report", step_report),
]


def build(model: str | Path | ModelWrapper, out: str | Path, cfg: BuildConfig | None = None,
          from_step: str | None = None, progress: Progress = NO_PROGRESS) -> dict:
    """Build `model` (an ONNX path or a loaded graph) into folder `out`; returns the report.

    The build happens in a sibling folder that replaces `out` only once it is complete: a build
    that fails leaves no half-written folder, and an earlier build in `out` exactly as it was.
    With `from_step` (a name of `STEPS`), `out` must be a finished build of the same model: the
    steps before it are kept as they are (their checkpoints, the host graphs), and the build runs
    from the checkpoint of the step before, with `cfg`. Each step is reported to `progress` as
    it begins and ends."""
    cfg = cfg or BuildConfig()
    out = Path(out)
    _check_destination(out)
    loaded = load_onnx(model) if not isinstance(model, ModelWrapper) else model
    check_known_ops(loaded)
    start = _resume_point(out, loaded, from_step) if from_step is not None else 0
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        if start:
            shutil.rmtree(work)
            # what the steps from `start` and the end of a build write again is left behind
            shutil.copytree(out, work, ignore=shutil.ignore_patterns(
                "report.json", "report.html", "sim.json", "verify.json", "synth", "deploy", "vivado",
                "folding_in.json"))
        source = ModelReference.of_file(Path(model), out) if not isinstance(model, ModelWrapper) else None
        report = _build_into(loaded, work, cfg, start, progress, source)
        _swap_in(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _resume_point(out: Path, loaded: ModelWrapper, from_step: str) -> int:
    """The index in `STEPS` to start at; `out` must hold a finished build of `loaded`."""
    names = [name for name, _ in STEPS]
    if from_step not in names[1:]:
        raise HwgenError(f"must be one of {', '.join(names[1:])} (a step with a checkpoint before it)",
                         where="--from-step")
    if not (out / "report.json").is_file():
        raise HwgenError("--from-step needs a finished build here", where=str(out))
    given = ModelWrapper(str(out / INPUT_CHECKPOINT))
    if given.model.SerializeToString() != loaded.model.SerializeToString():
        raise HwgenError("was built from another model: --from-step restarts a build of the same model",
                         where=str(out))
    return names.index(from_step)

def _check_destination(out: Path) -> None:
    """`out` must be absent, empty, or an earlier hwgen build (which the new one replaces)."""
    if out.exists() and not out.is_dir():
        raise HwgenError("is a file, not a build folder", where=str(out))
    if out.is_dir() and any(out.iterdir()) and not (out / "build.toml").is_file():
        raise HwgenError("holds files that are not a hwgen build; build into a new or empty folder",
                         where=str(out))


def _swap_in(work: Path, out: Path) -> None:
    """Replace `out` by the finished build in `work` (both in the same parent folder)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.replaced-{os.getpid()}"
        os.rename(out, old)
    os.rename(work, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build_into(loaded: ModelWrapper, out: Path, cfg: BuildConfig, start: int = 0,
                progress: Progress = NO_PROGRESS, source: ModelReference | None = None) -> dict:
    """Run the steps from `STEPS[start]` in `out`; from 0 a whole build, else from the checkpoint
    of the step before `start`, which `out` holds. `source` is the model file as build.toml names
    it; a model given in memory (no file) is named by its copy in the build, `graphs/00_input.onnx`."""
    graphs = out / "graphs"
    if start == 0:
        graphs.mkdir()
        progress.begin("ingest")
        loaded.save(str(out / INPUT_CHECKPOINT))
        prepared = prepare(loaded).transform(GiveUniqueNodeNames())
        prepared.save(str(graphs / "01_ingest.onnx"))
        progress.end("ingest")
    else:
        prepared = ModelWrapper(str(graphs / "01_ingest.onnx"))
        for later in sorted(graphs.glob("*.onnx"))[start + 2:]:
            later.unlink()
    state = BuildState(prepared, cfg, out)
    state.model_input_shape = list(prepared.get_tensor_shape(prepared.graph.input[0].name))
    state.model_output_shape = list(prepared.get_tensor_shape(prepared.graph.output[0].name))
    initializers = {i.name for i in loaded.graph.initializer}
    state.model_input_name = next(i.name for i in loaded.graph.input if i.name not in initializers)
    state.model_input_dtype = prepared.get_tensor_datatype(prepared.graph.input[0].name).name
    if start:
        name, index = STEPS[start - 1][0], start + 1
        state.model = ModelWrapper(str(graphs / f"{index:02d}_{name}.onnx"))
    for index, (name, step) in list(enumerate(STEPS, start=2))[start:]:
        progress.begin(name)
        try:
            state = step(state)
        except RewriteFailure as exc:
            raise HwgenError(f"step {name}: {exc}; the model is one hwgen cannot lower (if it is a valid "
                             "QONNX model, this is a bug in hwgen)") from None
        declare_domains(state.model).save(str(graphs / f"{index:02d}_{name}.onnx"))
        progress.end(name)
    if cfg.board is not None:
        progress.begin("deploy")
        write_deploy(out, lookup_board(cfg.board))
        write_flow(out, lookup_board(cfg.board))
        progress.end("deploy")
    if source is None:
        source = ModelReference(INPUT_CHECKPOINT, file_sha256(out / INPUT_CHECKPOINT))
    (out / "build.toml").write_text(cfg.to_toml("folding_in.json" if cfg.folding is not None else None, source))
    if cfg.folding is not None:
        (out / "folding_in.json").write_text(json.dumps(cfg.folding, indent=2) + "\n")
    write_json_atomically(out / "report.json", state.report)
    write_report_page(out)  # report.html, from the files just written
    return state.report

"""A build is a list of plain steps, each `step(state) -> state`, with an ONNX checkpoint after each.

    load -> ingest -> streamline -> partition -> to_hardware -> fold -> plumbing -> rtl -> report

`OUT/report.json` is written last and atomically: a build that fails at any step leaves none, and
a stale one from an earlier build into the same folder is removed first.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.general import GiveUniqueNodeNames

from hwgen.config import BuildConfig
from hwgen.frontend import check_known_ops, load_onnx, prepare
from hwgen.host import StreamInfo, write_accelerator_json
from hwgen.report import build_report, write_json_atomically
from hwgen.rtl.stitch import stitch
from hwgen.transforms.partition import split_host_and_accelerator
from hwgen.transforms.pipeline import (
    FOLD, PLUMBING, STREAMLINE, TO_HARDWARE, apply_all, check_stage,
)


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


def step_streamline(s: BuildState) -> BuildState:
    s.model = apply_all(s.model, STREAMLINE)
    check_stage(s.model, "streamline")
    return s


def step_partition(s: BuildState) -> BuildState:
    parts = split_host_and_accelerator(s.model)
    parts.pre.save(str(s.out / "host_pre.onnx"))
    parts.post.save(str(s.out / "host_post.onnx"))
    s.model = parts.accel
    check_stage(s.model, "partition")
    return s


def step_to_hardware(s: BuildState) -> BuildState:
    s.model = apply_all(s.model, TO_HARDWARE)
    check_stage(s.model, "to_hardware")
    return s


def step_fold(s: BuildState) -> BuildState:
    s.model = apply_all(s.model, FOLD(s.cfg))
    check_stage(s.model, "fold")
    return s


def step_plumbing(s: BuildState) -> BuildState:
    s.model = apply_all(s.model, PLUMBING(s.cfg))
    check_stage(s.model, "plumbing")
    return s


def step_rtl(s: BuildState) -> BuildState:
    rtl = s.out / "rtl"
    if rtl.exists():
        shutil.rmtree(rtl)
    design = stitch(s.model, rtl, s.cfg.top_name)
    g_in, g_out = s.model.graph.input[0].name, s.model.graph.output[0].name
    write_accelerator_json(
        s.out / "accelerator.json", design.top, s.model_input_shape, s.model_output_shape,
        StreamInfo.of(g_in, s.model.get_tensor_shape(g_in), design.input),
        StreamInfo.of(g_out, s.model.get_tensor_shape(g_out), design.output),
        s.model_input_name, s.model_input_dtype, design.modules,
        [{"name": e.name, "tensor": e.tensor, "producer": e.producer, "consumer": e.consumer} for e in design.edges],
    )
    return s


def step_report(s: BuildState) -> BuildState:
    s.report = build_report(s.model, s.cfg.clock_mhz)
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


def build(model: str | Path | ModelWrapper, out: str | Path, cfg: BuildConfig | None = None) -> dict:
    """Build `model` (an ONNX path or a loaded graph) into folder `out`; returns the report."""
    cfg = cfg or BuildConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").unlink(missing_ok=True)
    loaded = load_onnx(model) if not isinstance(model, ModelWrapper) else model
    check_known_ops(loaded)
    graphs = out / "graphs"
    if graphs.exists():
        shutil.rmtree(graphs)
    graphs.mkdir()
    loaded.save(str(graphs / "00_input.onnx"))
    prepared = prepare(loaded).transform(GiveUniqueNodeNames())
    prepared.save(str(graphs / "01_ingest.onnx"))
    state = BuildState(prepared, cfg, out)
    state.model_input_shape = list(prepared.get_tensor_shape(prepared.graph.input[0].name))
    state.model_output_shape = list(prepared.get_tensor_shape(prepared.graph.output[0].name))
    initializers = {i.name for i in loaded.graph.initializer}
    state.model_input_name = next(i.name for i in loaded.graph.input if i.name not in initializers)
    state.model_input_dtype = prepared.get_tensor_datatype(prepared.graph.input[0].name).name
    for index, (name, step) in enumerate(STEPS, start=2):
        state = step(state)
        state.model.save(str(graphs / f"{index:02d}_{name}.onnx"))
    (out / "build.toml").write_text(cfg.to_toml())
    if cfg.folding is not None:
        (out / "folding_in.json").write_text(json.dumps(cfg.folding, indent=2) + "\n")
    write_json_atomically(out / "report.json", state.report)
    return state.report

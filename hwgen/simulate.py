"""Simulating and verifying a finished build folder.

`simulate_build` is what `hwgen sim` runs: host pre-processing, packing, Verilator (built once per
RTL content, cached), unpacking, host output transform. `verify_build` runs the model *as given*
(QONNX execution of `graphs/00_input.onnx`, before any hwgen rewrite) beside it and compares bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.config import default_cache_dir
from hwgen.errors import HwgenError
from hwgen.execute import execute
from hwgen.frontend.load import prepare_for_execution
from hwgen.host import HostIO
from hwgen.sim import build as build_sim
from hwgen.sim import run as run_sim
from hwgen.sim.verilator import DEFAULT_MAX_IDLE, DeadlockError
from hwgen.report import write_json_atomically


def _finished(build_dir: Path) -> None:
    if not (build_dir / "report.json").exists():
        raise HwgenError("is not a finished build (no report.json): run `hwgen build` first",
                         where=str(build_dir))


def _watch_config(host: HostIO) -> str:
    """A Verilator configuration that keeps the top module's stream handshakes readable, so that a
    deadlock report can say which streams are stuck."""
    lines = ["`verilator_config"]
    if host.streams:
        lines += [f'public_flat_rd -module "{host.top}" -var "edge*_tvalid"',
                  f'public_flat_rd -module "{host.top}" -var "edge*_tready"']
    return "\n".join(lines) + "\n"


def _deadlock_report(exc: DeadlockError, host: HostIO) -> str:
    """One line: which streams hold a beat nobody takes, named by the units on either end."""
    by_name = {s["name"]: s for s in host.streams}

    def describe(name: str) -> str:
        if name in ("s_axis", "m_axis"):
            return f"the accelerator {'input' if name == 's_axis' else 'output'}"
        s = by_name.get(name)
        if s is None:
            return name
        return f"{s['producer'] or 'input'} -> {s['consumer'] or 'output'}"

    stuck = [describe(n) for n in exc.full if n != "s_axis"] or [describe(n) for n in exc.full]
    return (f"deadlock in rtlsim: no stream moved for {exc.idle_cycles} cycles; streams holding data that "
            f"nobody takes: {', '.join(stuck) or 'none'} (a FIFO too small for a reconvergent path? see "
            "report.json layers[].depth)")


def simulate_build(build_dir: Path, x: np.ndarray, *, stall_prob: float = 0.0, seed: int = 0,
                   cache_dir: Path | None = None, max_idle: int = DEFAULT_MAX_IDLE) -> tuple[np.ndarray, dict]:
    """Run model inputs `x` through the build's RTL; returns (model outputs, stats as in sim.json).
    A design that stops moving for `max_idle` cycles is a `HwgenError` naming the stuck streams."""
    _finished(build_dir)
    if not 0.0 <= stall_prob < 1.0:
        raise HwgenError(f"must be in [0, 1), got {stall_prob}", where="--stall-prob")
    host = HostIO(build_dir)
    beats = host.encode(x)
    exe = build_sim(build_dir / "rtl", host.top, cache_dir or default_cache_dir(), config=_watch_config(host))
    try:
        result = run_sim(exe, beats, host.output.beats_per_frame, host.output.bytes_per_beat,
                         stall_prob=stall_prob, seed=seed, max_idle=max_idle,
                         watch=[f"TOP.{host.top}.{s['name']}" for s in host.streams])
    except DeadlockError as exc:
        raise HwgenError(_deadlock_report(exc, host), where=str(build_dir)) from None
    y = host.decode(result.output)
    stats = {"cycles_per_frame": result.cycles_per_frame, "latency_cycles": result.latency_cycles,
             "frames": result.frames, "total_cycles": result.total_cycles, "stall_prob": stall_prob}
    write_json_atomically(build_dir / "sim.json", stats)
    return y, stats


def run_input_model(build_dir: Path, x: np.ndarray) -> np.ndarray:
    """QONNX execution of the model exactly as it was given to the build."""
    model = ModelWrapper(str(build_dir / "graphs" / "00_input.onnx"))
    return execute(prepare_for_execution(model), x)


@dataclass(frozen=True)
class Verification:
    frames: int
    mismatched_frames: int
    max_abs_diff: float
    cycles_per_frame: float

    @property
    def exact(self) -> bool:
        return self.mismatched_frames == 0

    def summary(self) -> str:
        verdict = "bit-exact" if self.exact else "MISMATCH"
        return (f"{verdict}: {self.frames - self.mismatched_frames}/{self.frames} frames identical to the "
                f"input model (max |diff| {self.max_abs_diff:g}), {self.cycles_per_frame:.1f} cycles/frame")


def verify_build(build_dir: Path, x: np.ndarray, *, stall_prob: float = 0.0,
                 cache_dir: Path | None = None) -> Verification:
    _finished(build_dir)
    HostIO(build_dir).check_input(x)
    expected = run_input_model(build_dir, x)
    actual, stats = simulate_build(build_dir, x, stall_prob=stall_prob, cache_dir=cache_dir)
    same = np.array([np.array_equal(a, e) for a, e in zip(actual, expected)])
    diff = float(np.max(np.abs(actual.astype(np.float64) - expected))) if actual.size else 0.0
    return Verification(len(same), int((~same).sum()), diff, stats["cycles_per_frame"])


def check_checkpoints(build_dir: Path, x: np.ndarray) -> list[tuple[str, bool]]:
    """Execute every ONNX checkpoint of a build on `x` and compare with the input model.

    Checkpoints before the partition step are whole models; from it on they are the accelerator
    part, run between the build's host pre- and post-processing. Returns (checkpoint, bit-exact)
    in build order: the test ladder reads it to find the first step that changed a bit.
    """
    expected = run_input_model(build_dir, x)
    host = HostIO(build_dir)
    results = []
    for path in sorted((build_dir / "graphs").glob("*.onnx")):
        model = prepare_for_execution(ModelWrapper(str(path)))
        if model.graph.input[0].name == host.input.tensor:
            ints = host.to_integers(x).reshape([x.shape[0], *host.input.shape[1:]])
            got = host.from_integers(execute(model, ints.astype(np.float32)))
        else:
            got = execute(model, x)
        results.append((path.stem, bool(np.array_equal(got, expected))))
    return results

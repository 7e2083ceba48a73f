"""The Python API, for notebooks and scripts: `hwgen.build(model, out, **options)` -> `Build`.

    b = hwgen.build("cnv.onnx", "build/cnv", target_fps=3000)     # or a Brevitas nn.Module
    b.report["est_fps"]; y = b.sim(x); b.verify(x, labels=y_true); b.synth("xc7z020"); b.show()
    hwgen.export(module).save("model.onnx")                         # a Brevitas module as QONNX

The same steps as the command line (`hwgen build`, `sim`, `verify`, `synth`, `report`), on the
same build folder, so a build made here can be simulated from the shell and the other way round.
Options are `BuildConfig`'s fields; `Build.open(out)` takes a finished build folder.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.config import BuildConfig
from hwgen.errors import HwgenError

#: the keyword options `build` takes: those of `BuildConfig`
OPTIONS = tuple(f.name for f in dataclasses.fields(BuildConfig))


def build(model: str | Path | ModelWrapper | Any, out: str | Path, *, input_shape: tuple[int, ...] | None = None,
          from_step: str | None = None, **options: Any) -> Build:
    """Build `model` into folder `out` and return the `Build`.

    `model` is a QONNX/ONNX file, a loaded `ModelWrapper`, or a Brevitas `torch.nn.Module`, which is
    exported first (in eval mode) with an input of `input_shape` (batch first; default: the module's
    own `input_shape` attribute, as the zoo's networks have). `options` are `BuildConfig`'s fields
    (`target_fps=3000`, `board="pynq-z1"`, ...; with a board, `clock_mhz` is its fabric clock unless
    given); `from_step` restarts a finished build of the same
    model as `hwgen build --from-step` does."""
    from hwgen.builder import build as run_build

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise HwgenError(f"unknown build option {unknown[0]!r}; options are {', '.join(OPTIONS)}",
                         where="hwgen.build")
    if "cache_dir" in options:
        options["cache_dir"] = Path(options["cache_dir"])
    if options.get("board") and "clock_mhz" not in options:  # the board's fabric clock, as on the command line
        from hwgen.deploy.boards import lookup_board

        options["clock_mhz"] = lookup_board(options["board"]).fclk_mhz
    cfg = BuildConfig(**options)
    run_build(_as_model(model, input_shape), out, cfg, from_step=from_step)
    return Build(Path(out), cfg.cache_dir)


def _as_model(model: Any, input_shape: tuple[int, ...] | None) -> str | Path | ModelWrapper:
    """A path or a `ModelWrapper` as they are; a torch module exported to QONNX."""
    if isinstance(model, (str, Path, ModelWrapper)):
        return model
    import torch

    if not isinstance(model, torch.nn.Module):
        raise HwgenError(f"must be an ONNX file, a ModelWrapper or a torch.nn.Module, not {type(model).__name__}",
                         where="model")
    return export(model, input_shape)


def export(module: Any, input_shape: tuple[int, ...] | None = None, **export_options: Any) -> ModelWrapper:
    """A Brevitas `torch.nn.Module` as the QONNX graph `build` takes, exported in eval mode with an
    input of `input_shape` (batch first; default: the module's own `input_shape` attribute).
    `export_options` go to Brevitas' QONNX export (`torch.onnx.export`'s: `dynamo=False`,
    `opset_version`, `dynamic_axes`, ...). `.save(path)` writes it as a file."""
    from hwgen.frontend.load import export_brevitas

    shape = input_shape if input_shape is not None else getattr(module, "input_shape", None)
    if shape is None:
        raise HwgenError("a torch module needs input_shape=(1, C, H, W) (it has no input_shape attribute)",
                         where="input_shape")
    return export_brevitas(module, tuple(shape), **export_options)


class Build:
    """A finished build folder, with the steps that come after a build."""

    def __init__(self, out: str | Path, cache_dir: Path | None = None) -> None:
        self.out = Path(out)
        self.cache_dir = cache_dir
        if not (self.out / "report.json").is_file():
            raise HwgenError("is not a finished hwgen build (no report.json)", where=str(self.out))

    @classmethod
    def open(cls, out: str | Path, cache_dir: str | Path | None = None) -> Build:
        """The build already in folder `out` (made by `hwgen build` or `hwgen.build`)."""
        return cls(out, Path(cache_dir) if cache_dir is not None else None)

    @property
    def report(self) -> dict:
        """`report.json` as it is now (`synth` adds to it)."""
        return json.loads((self.out / "report.json").read_text())

    def _cache(self) -> dict:
        return {"cache_dir": self.cache_dir} if self.cache_dir is not None else {}

    def sim(self, x: np.ndarray, stall_prob: float = 0.0, seed: int = 0) -> np.ndarray:
        """The accelerator's outputs for model inputs `x`, from rtlsim (Verilator); the figures
        of the run go to `sim.json` (`self.sim_stats`)."""
        from hwgen.simulate import simulate_build

        y, _ = simulate_build(self.out, np.asarray(x), stall_prob=stall_prob, seed=seed, **self._cache())
        return y

    @property
    def sim_stats(self) -> dict | None:
        """The last simulation's figures (cycles per frame, latency, frames), or None."""
        path = self.out / "sim.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def verify(self, x: np.ndarray, labels: np.ndarray | None = None, stall_prob: float = 0.0):
        """rtlsim beside the model as given (`hwgen.simulate.Verification`; `.passed`, `.summary()`),
        with `labels` the accuracy of both too."""
        from hwgen.simulate import verify_build

        return verify_build(self.out, np.asarray(x), stall_prob=stall_prob, labels=labels, **self._cache())

    def synth(self, part: str | None = None, jobs: int = 2) -> dict:
        """Yosys synthesis for `part` (default: the build's part, else xc7z020); the `synth` block
        it adds to the report."""
        from hwgen.config import build_part
        from hwgen.synth import synthesize

        return synthesize(self.out, part=part or build_part(self.out), jobs=jobs)["synth"]

    def show(self) -> ReportView:
        """The report page (`report.html`, written again with what has run since), shown inline by
        Jupyter."""
        from hwgen.reportpage import write_report_page

        return ReportView(write_report_page(self.out))

    def __repr__(self) -> str:
        r = self.report
        return (f"Build({str(self.out)!r}: {len(r['layers'])} units, {r['totals']['max_est_cycles']} cycles/frame, "
                f"est. {r['est_fps']:.0f} FPS at {r['clock_mhz']} MHz)")


class ReportView:
    """A report page that Jupyter shows inline (in an iframe of its own, so that the page's styles
    and scripts stay apart from the notebook's)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _repr_html_(self) -> str:
        page = self.path.read_text()
        return (f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:900px;border:0" '
                f'title="hwgen report {html.escape(str(self.path.parent))}"></iframe>')

    def __repr__(self) -> str:
        return f"ReportView({str(self.path)!r})"

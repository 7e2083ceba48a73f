"""Simulating and verifying a finished build folder.

`simulate_build` is what `hwgen sim` runs: host pre-processing, packing, Verilator (built once per
RTL content, cached), unpacking, host output transform. `verify_build` runs the model *as given*
(QONNX execution of `graphs/00_input.onnx`, before any hwgen rewrite) beside it and compares bits;
it writes `verify.json` (the fidelity figures, and with class labels both top-1 accuracies), which
the report page (`hwgen.reportpage`) shows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.config import default_cache_dir
from hwgen.errors import HwgenError
from hwgen.execute import execute, execute_context, slices, with_batch
from hwgen.frontend.load import prepare_for_execution
from hwgen.frontend.support import check_known_ops
from hwgen.host import HostIO, load_build_graph
from hwgen.sim import build as build_sim
from hwgen.sim import run as run_sim
from hwgen.sim.verilator import DEFAULT_MAX_IDLE, DeadlockError, DramImage
from hwgen.progress import NO_PROGRESS, Progress
from hwgen.report import write_json_atomically
from hwgen.reach import propagate
from hwgen.transforms.float_ties import float_tie_nodes, tie_outputs


#: what `sim` and `verify` read from a build folder
BUILD_FILES = ("report.json", "accelerator.json", "host_pre.onnx", "host_post.onnx", "graphs/00_input.onnx")


def _finished(build_dir: Path) -> None:
    if not build_dir.is_dir():
        raise HwgenError("no such build folder", where=str(build_dir))
    missing = [f for f in BUILD_FILES if not (build_dir / f).is_file()]
    if missing:
        raise HwgenError(f"is not a finished build (no {missing[0]}): run `hwgen build` first",
                         where=str(build_dir))
    if not (build_dir / "rtl").is_dir():
        raise HwgenError("is not a finished build (no rtl/): run `hwgen build` first", where=str(build_dir))


def _watch_config(host: HostIO) -> str:
    """A Verilator configuration that keeps the top module's stream handshakes readable, so that a
    deadlock report can say which streams are stuck."""
    lines = ["`verilator_config"]
    if host.streams:
        lines += [f'public_flat_rd -module "{host.top}" -var "edge*_tvalid"',
                  f'public_flat_rd -module "{host.top}" -var "edge*_tready"']
    return "\n".join(lines) + "\n"


def build_simulator(build_dir: Path, cache_dir: Path | None = None) -> Path:
    """The build's Verilator simulator (built once per RTL and cached): the one `sim`, `verify`, the
    simulated board and the benchmarks all run, with the stream handshakes a deadlock report reads."""
    _finished(build_dir)
    host = HostIO(build_dir)
    return build_sim(build_dir / "rtl", host.top, cache_dir or default_cache_dir(), config=_watch_config(host),
                     threads=None)


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


def _dram_of(host: HostIO) -> DramImage | None:
    """The bench's DRAM for a build whose weights stream from there."""
    image = host.dram()
    return None if image is None else DramImage(image)


def simulate_build(build_dir: Path, x: np.ndarray, *, stall_prob: float = 0.0, seed: int = 0,
                   cache_dir: Path | None = None, max_idle: int = DEFAULT_MAX_IDLE,
                   progress: Progress = NO_PROGRESS) -> tuple[np.ndarray, dict]:
    """Run model inputs `x` through the build's RTL; returns (model outputs, stats as in sim.json).
    A design that stops moving for `max_idle` cycles is a `HwgenError` naming the stuck streams.
    The Verilator build and the run are the steps "verilator" and "rtlsim" of `progress`."""
    _, y, stats = _simulate(build_dir, x, stall_prob=stall_prob, seed=seed, cache_dir=cache_dir, max_idle=max_idle,
                            progress=progress)
    return y, stats


def _simulate(build_dir: Path, x: np.ndarray, *, stall_prob: float, seed: int, cache_dir: Path | None,
              max_idle: int = DEFAULT_MAX_IDLE, progress: Progress = NO_PROGRESS) -> tuple[np.ndarray, np.ndarray, dict]:
    """(the accelerator's integer outputs, the model outputs made of them, stats)."""
    _finished(build_dir)
    if not 0.0 <= stall_prob < 1.0:
        raise HwgenError(f"must be in [0, 1), got {stall_prob}", where="--stall-prob")
    host = HostIO(build_dir)
    beats = host.encode(x)
    progress.begin("verilator")
    exe = build_simulator(build_dir, cache_dir)
    progress.end("verilator")
    progress.begin(f"rtlsim ({x.shape[0]} frames)")
    try:
        result = run_sim(exe, beats, host.output.beats_per_frame, host.output.bytes_per_beat,
                         stall_prob=stall_prob, seed=seed, max_idle=max_idle,
                         watch=[f"TOP.{host.top}.{s['name']}" for s in host.streams],
                         weights=host.weight_stream(), dram=_dram_of(host))
    except DeadlockError as exc:
        raise HwgenError(_deadlock_report(exc, host), where=str(build_dir)) from None
    progress.end(f"rtlsim ({x.shape[0]} frames)")
    ints = host.decode_integers(result.output)
    y = host.from_integers(ints)
    stats = {"cycles_per_frame": result.cycles_per_frame, "latency_cycles": result.latency_cycles,
             "frames": result.frames, "total_cycles": result.total_cycles, "stall_prob": stall_prob}
    write_json_atomically(build_dir / "sim.json", stats)
    return ints, y, stats


def run_input_model(build_dir: Path, x: np.ndarray) -> np.ndarray:
    """QONNX execution of the model exactly as it was given to the build."""
    path = build_dir / "graphs" / "00_input.onnx"
    try:
        model = ModelWrapper(str(path))
    except Exception as exc:  # protobuf's DecodeError and qonnx's assertions on malformed graphs
        raise HwgenError(f"not an ONNX model ({type(exc).__name__})", where=str(path)) from None
    check_known_ops(model)  # the user's model: only ops of the domains hwgen knows ever execute
    return execute(prepare_for_execution(model), x)


def frame_ulps(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per frame, the largest difference between `actual` and `expected` in float32 units in the
    last place of the frame's largest expected value (a logit near 0 next to large ones is judged
    on the scale of the whole output, as the rounding of a dot product is)."""
    return output_ulps(actual, expected).max(axis=1, initial=0)


def output_ulps(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per output (frames, outputs), the difference between `actual` and `expected` in float32
    units in the last place of its frame's largest expected value (see `frame_ulps`)."""
    n = actual.shape[0]
    a = actual.reshape(n, -1).astype(np.float64)
    e = np.asarray(expected).reshape(n, -1).astype(np.float64)
    scale = np.spacing(np.abs(e).max(axis=1, initial=0).astype(np.float32)).astype(np.float64)
    return np.ceil(np.abs(a - e) / scale[:, None]).astype(np.int64)


@dataclass(frozen=True)
class Verification:
    """rtlsim beside the model as given, and beside the accelerator's own integer graph.

    frames: how many ran; mismatched_frames: frames whose outputs differ from the model as given
    at all; integer_mismatches: frames whose accelerator integers differ from the integer graph
    (checkpoint `03_partition`) - a hardware error; tie_frames: mismatched frames each of whose
    outputs that differ beyond float rounding (`ulp_bound`) lies on the path of an accumulator of
    a dot product the model rounds (a scale that is not a power of two inside it) that lay within
    the model's float32 rounding bound of a threshold, so that the model's own result there
    depends on the order it sums in (`hwgen.transforms.float_ties`, `hwgen.reach`); tied: those
    frames by index, and tie_nodes the thresholds whose ties they sit on; max_ulps: over every
    differing output not so excused, the largest difference from the model's outputs in float32
    units in the last place of its frame's largest output (see `frame_ulps`); ulp_bound: the most
    that reassociating the model's own float ops (its last layer's dot products) can account for.
    Each output is judged by what it depends on: a tie elsewhere in the frame excuses nothing."""

    frames: int
    mismatched_frames: int
    integer_mismatches: int
    max_abs_diff: float
    max_ulps: int
    ulp_bound: int
    cycles_per_frame: float
    tie_frames: int = 0
    tied: tuple[int, ...] = ()
    tie_nodes: tuple[str, ...] = ()
    #: with class labels (`verify_build(labels=...)`): the top-1 accuracy of the model as given and
    #: of the accelerator, and on how many frames their top-1 classes agree; None without labels
    model_accuracy: float | None = None
    accelerator_accuracy: float | None = None
    agreeing_frames: int | None = None

    @property
    def exact(self) -> bool:
        return self.mismatched_frames == 0

    @property
    def passed(self) -> bool:
        """Bit-exact, or exact integers whose outputs differ from the model only where its own float
        rounding decides: a reassociated float tail within `ulp_bound`, or a threshold tie."""
        return self.exact or (self.integer_mismatches == 0 and self.max_ulps <= self.ulp_bound)

    def to_json(self) -> dict:
        """What `verify.json` holds: every field, `exact`, `passed` and the summary line (a
        difference that is not a finite number is null, which JSON can hold)."""
        data = {key: (value if not isinstance(value, float) or np.isfinite(value) else None)
                for key, value in asdict(self).items()}
        return {**data, "exact": self.exact, "passed": self.passed, "summary": self.summary()}

    def summary(self) -> str:
        return self._fidelity() + self._accuracy()

    def _accuracy(self) -> str:
        if self.model_accuracy is None or self.accelerator_accuracy is None:
            return ""
        return (f"; top-1 accuracy on the labels: model {100 * self.model_accuracy:.2f} %, accelerator "
                f"{100 * self.accelerator_accuracy:.2f} %, the two agree on {self.agreeing_frames}/{self.frames} frames")

    def _fidelity(self) -> str:
        n, cycles = self.frames, f"{self.cycles_per_frame:.1f} cycles/frame"
        if self.exact:
            return f"bit-exact: {n}/{n} frames identical to the input model, {cycles}"
        if self.integer_mismatches:
            return (f"MISMATCH: the accelerator's integer output differs from its integer graph on "
                    f"{self.integer_mismatches}/{n} frames (a hardware error); {self.mismatched_frames}/{n} "
                    f"frames differ from the input model (max |diff| {self.max_abs_diff:g}), {cycles}")
        named = ", ".join(map(str, self.tied[:8])) + (", ..." if len(self.tied) > 8 else "")
        ties = (f"{self.tie_frames} on a threshold tie that the model's float32 rounding decides (frames "
                f"{named}, at {', '.join(self.tie_nodes)}: a scale that is not a power of two inside a dot "
                "product, so there its result depends on the order its MatMul adds terms in, not only on "
                "their sum)") if self.tie_frames else ""
        rest = self.mismatched_frames - self.tie_frames
        ulps = f"{rest} by at most {self.max_ulps} ulps (float rounding of the model's own ops accounts for " \
               f"up to {self.ulp_bound})" if rest else ""
        if self.passed:
            return (f"exact integers ({n}/{n} frames identical to the accelerator's integer graph); the "
                    f"outputs differ from the input model on {self.mismatched_frames}/{n} frames: "
                    f"{'; '.join(part for part in (ties, ulps) if part)}; {cycles}")
        return (f"MISMATCH with the input model on {rest}/{n} frames (up to {self.max_ulps} ulps, max |diff| "
                f"{self.max_abs_diff:g}) that no float rounding of the model's accounts for, though the "
                f"accelerator is exact to its integer graph{'; ' + ties if ties else ''}; {cycles}")


def _ulp_bound(build_dir: Path) -> int:
    """Reassociating an n-term float dot product moves its result by at most about n ulps of its
    largest partial sum; n is the widest layer's input (MW), plus two for the scale and bias."""
    layers = json.loads((build_dir / "report.json").read_text()).get("layers", [])
    return 2 + max([int(layer.get("MW") or 0) for layer in layers] + [0])


def verify_build(build_dir: Path, x: np.ndarray, *, stall_prob: float = 0.0,
                 cache_dir: Path | None = None, labels: np.ndarray | None = None,
                 progress: Progress = NO_PROGRESS) -> Verification:
    """rtlsim of `x` beside the model as given and beside the integer graph; with `labels` (one
    integer class per frame) also the top-1 accuracy of both. Writes `verify.json`. The model's
    execution, the Verilator build and the run are steps of `progress`."""
    _finished(build_dir)
    host = HostIO(build_dir)
    host.check_input(x)
    if labels is not None:
        labels = check_labels(labels, x.shape[0])
    progress.begin("model (QONNX execution)")
    expected = run_input_model(build_dir, x)
    progress.end("model (QONNX execution)")
    ints, actual, stats = _simulate(build_dir, x, stall_prob=stall_prob, seed=0, cache_dir=cache_dir,
                                    progress=progress)
    reference, marks, near = _integer_reference(build_dir, host, x)
    integer_bad = np.array([reference is not None and not np.array_equal(a, r) for a, r in zip(ints, reference)],
                           bool)
    n, expected = len(actual), np.asarray(expected)
    floats = np.issubdtype(expected.dtype, np.floating) and actual.shape == expected.shape
    differs = (actual != expected).reshape(n, -1) if actual.shape == expected.shape else np.ones((n, 1), bool)
    same, bound = ~differs.any(axis=1), _ulp_bound(build_dir)
    ulps = output_ulps(actual, expected) if floats else np.where(differs, 1 << 31, 0)
    beyond = differs & (ulps > bound)  # what the rounding of the model's float ops cannot account for
    marks = _as_outputs(marks, differs.shape)
    tie = ~integer_bad & beyond.any(axis=1) & ~(beyond & ~marks).any(axis=1)
    judged = differs & ~(beyond & marks & tie[:, None])  # the outputs not excused as ties
    worst = int(ulps[judged].max(initial=0))
    diff = float(np.max(np.abs(actual.reshape(n, -1)[judged].astype(np.float64) - expected.reshape(n, -1)[judged]),
                        initial=0.0)) if floats else (0.0 if not judged.any() else float("inf"))
    tied = tuple(int(i) for i in np.flatnonzero(tie))
    nodes = tuple(name for name, frames in near.items() if frames[tie].any())
    accuracy = {}
    if labels is not None:
        model_top1, accel_top1 = top1(expected), top1(actual)
        accuracy = {"model_accuracy": float(np.mean(model_top1 == labels)),
                    "accelerator_accuracy": float(np.mean(accel_top1 == labels)),
                    "agreeing_frames": int(np.sum(model_top1 == accel_top1))}
    result = Verification(n, int((~same).sum()), int(integer_bad.sum()), diff, worst, bound,
                          stats["cycles_per_frame"], tie_frames=len(tied), tied=tied, tie_nodes=nodes, **accuracy)
    write_json_atomically(build_dir / "verify.json", result.to_json())
    return result


def check_labels(labels: np.ndarray, frames: int) -> np.ndarray:
    """`labels` as one integer class per frame (shape (frames,) or (frames, 1)), or a one-line
    error naming `--labels`: a wrong count or a float array would make the accuracy meaningless
    without failing anywhere."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != frames:
        raise HwgenError(f"has shape {list(labels.shape)}, expected one class label per input frame ({frames})",
                         where="--labels")
    if not np.issubdtype(labels.dtype, np.integer):
        raise HwgenError(f"has dtype {labels.dtype}, expected integer class labels", where="--labels")
    if frames and labels.min() < 0:
        raise HwgenError(f"holds the negative class label {int(labels.min())}", where="--labels")
    return labels.astype(np.int64)


def top1(outputs: np.ndarray) -> np.ndarray:
    """The class each frame's output names. Integer outputs are class indices already (a TopK,
    ArgMax or LabelSelect at the end, best first): the first one. Scores (floats) name the
    class of the largest; a single score per frame is taken as the class itself."""
    flat = np.asarray(outputs).reshape(np.asarray(outputs).shape[0], -1)
    if np.issubdtype(flat.dtype, np.integer):
        return flat[:, 0].astype(np.int64)
    if flat.shape[1] > 1:
        return flat.argmax(axis=1).astype(np.int64)
    return np.rint(flat[:, 0]).astype(np.int64)


def _integer_reference(build_dir: Path, host: HostIO, x: np.ndarray
                       ) -> tuple[np.ndarray | None, np.ndarray, dict[str, np.ndarray]]:
    """The accelerator's integer graph (checkpoint 03_partition) on the host's integers for `x`
    (None without the checkpoint); the model's outputs (as the host gives them) that a tie the
    model's float rounding decides can reach (`tie_outputs`, then through the host's output
    transform); and per tie node, the frames where it sat on one."""
    n = x.shape[0]
    path = build_dir / "graphs" / "03_partition.onnx"
    if not path.is_file():
        return None, np.zeros(0, bool), {}
    model = prepare_for_execution(load_build_graph(path))
    ints = host.to_integers(x).reshape([n, *host.input.shape[1:]]).astype(np.float32)
    if not float_tie_nodes(model):
        return np.rint(execute(model, ints)).astype(np.int64).reshape(n, -1), np.zeros(0, bool), {}
    out, outputs, marks, near = model.graph.output[0].name, [], [], {}
    for part in slices(n):
        runnable = with_batch(model, len(ints[part]))
        context = execute_context(runnable, ints[part])
        outputs.append(np.rint(context[out]).astype(np.int64).reshape(len(ints[part]), -1))
        reached, frames = tie_outputs(runnable, context)
        marks.append(reached.reshape(len(ints[part]), -1))
        for name, hit in frames.items():
            near[name] = np.concatenate([near.get(name, np.zeros(0, bool)), hit])
    reference, marks = np.concatenate(outputs), np.concatenate(marks)
    return reference, _through_host(host, reference, marks), near


def _as_outputs(marks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`marks` as (frames, outputs): none without ties; where the host's outputs do not match the
    accelerator's element for element, every output of a frame with a mark."""
    if marks.size == 0:
        return np.zeros(shape, bool)
    if marks.size == shape[0] * shape[1]:
        return marks.reshape(shape)
    return np.broadcast_to(marks.reshape(shape[0], -1).any(axis=1)[:, None], shape)


def _through_host(host: HostIO, values: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """The marks on the accelerator's output integers `values` carried through the host's output
    transform to the model's outputs."""
    post, n = host.post, values.shape[0]
    if not post.graph.node or not marks.any():
        return marks
    shaped = values.reshape([n, *host.output.shape[1:]]).astype(np.float32)
    runnable = with_batch(post, n)
    context = execute_context(runnable, shaped)
    carried = propagate(runnable, context, {runnable.graph.input[0].name: marks.reshape(shaped.shape)})
    out = runnable.graph.output[0].name
    return carried.get(out, np.zeros(np.shape(context[out]), bool)).reshape(n, -1)


def check_checkpoints(build_dir: Path, x: np.ndarray) -> list[tuple[str, bool]]:
    """Execute every ONNX checkpoint of a build after the model as given on `x` and compare with
    the model as given.

    Checkpoints before the partition step are whole models; from it on they are the accelerator
    part, run between the build's host pre- and post-processing. Returns (checkpoint, bit-exact)
    in build order: the test ladder reads it to find the first step that changed a bit.
    """
    expected = run_input_model(build_dir, x)
    host = HostIO(build_dir)
    results = []
    for path in sorted((build_dir / "graphs").glob("*.onnx")):
        if path.stem.startswith("00_"):
            continue  # the model as given: what every step is compared with
        model = prepare_for_execution(load_build_graph(path))
        if model.graph.input[0].name == host.input.tensor:
            ints = host.to_integers(x).reshape([x.shape[0], *host.input.shape[1:]])
            got = host.from_integers(execute(model, ints.astype(np.float32)))
        else:
            got = execute(model, x)
        results.append((path.stem, bool(np.array_equal(got, expected))))
    return results

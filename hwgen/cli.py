"""The `hwgen` command line: build, sim, verify, synth, report, demo, zoo, train.

    hwgen build [MODEL.onnx] -o OUT [--target-cycles N | --target-fps F] [--clock-mhz C] [--folding F.json]
                                [--fifo-sizing auto|measured|modelled] [--weight-memory auto|rom|loaded|dram|frame]
                                [--fifo-memory auto|chip|dram]
                                [--board NAME [--bitstream]]
                                [--config OUT/build.toml] [--from-step STEP] [--json] [--quiet]
    hwgen sim OUT --input X.npy --output Y.npy [--stall-prob P] [--json] [--quiet]
    hwgen verify OUT --input X.npy [--labels Y.npy] [--json] [--quiet]
    hwgen synth OUT [--part P | --board NAME] [--jobs N] [--json] [--quiet]
    hwgen report OUT                                  (rewrites OUT/report.html)
    hwgen boards
    hwgen demo [-o OUT]
    hwgen zoo list [--json]
    hwgen zoo export NAME [--size small|imagenet] [--seed S] [--checkpoint FILE] -o FILE.onnx
    hwgen train NAME [--data mnist5k|DIR] [--epochs N] [--resume] ... -o DIR     (see hwgen.train)

A mistake in what the user gave (`HwgenError`) prints one line and exits with status 2; a tool
that fails (`ToolError`: Verilator, the C++ compiler, Yosys) one line naming it and its log, exit
status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hwgen.config import FIFO_MEMORY_MODES, FIFO_SIZING_MODES, WEIGHT_MEMORY_MODES
from hwgen.dispatch import run_command
from hwgen.errors import HwgenError


def _load_npy(path: str) -> np.ndarray:
    p = Path(path)
    if not p.exists():
        raise HwgenError("no such file", where=str(p))
    try:
        return np.load(p, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError / UnpicklingError / OSError for garbage
        raise HwgenError(f"not a .npy array ({type(exc).__name__})", where=str(p)) from None


def _fps(text: str) -> float | str:
    """A frame rate, or 'max'."""
    if text == "max":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a frame rate or 'max': {text!r}") from None


def _load_folding(path: str | None) -> dict | None:
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise HwgenError("no such file", where=str(p))
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise HwgenError(f"not valid JSON ({exc.msg}, line {exc.lineno})", where=str(p)) from None


def cmd_build(args: argparse.Namespace) -> int:
    from hwgen.builder import build
    from hwgen.config import BuildConfig

    _apply_config(args)
    if args.model is None:
        raise HwgenError("give the MODEL to build, or --config OUT/build.toml of an earlier build", where="hwgen build")
    if args.bitstream and not args.board:
        raise HwgenError("needs --board (the bitstream is for a board)", where="--bitstream")
    clock = args.clock_mhz
    if clock is None:  # the board's fabric clock, else 100 MHz
        from hwgen.deploy.boards import lookup_board

        clock = lookup_board(args.board).fclk_mhz if args.board else 100.0
    cfg = BuildConfig(clock_mhz=clock, target_cycles=args.target_cycles, target_fps=args.target_fps,
                      folding=_load_folding(args.folding), fifo_sizing=args.fifo_sizing or "auto",
                      weight_memory=args.weight_memory or "auto", fifo_memory=args.fifo_memory or "auto",
                      board=args.board,
                      part=args.part, **_cache(args))
    with _progress(args, "build") as progress:
        report = build(args.model, args.output, cfg, from_step=args.from_step, progress=progress)
        if args.bitstream:
            from hwgen.deploy.vivado import run_flow

            progress.begin("vivado")
            bitstream = run_flow(Path(args.output))
            progress.end("vivado")
    t = report["totals"]
    target = report["target"]
    mhz = report["clock_mhz"]
    if target["cycles"] is not None and target["reached_cycles"] > target["cycles"]:
        print(f"warning: target of {target['cycles']} cycles/frame ({mhz * 1e6 / target['cycles']:.0f} FPS) not "
              f"reachable: {target['limited_by']} needs {target['reached_cycles']} cycles/frame "
              f"({mhz * 1e6 / target['reached_cycles']:.0f} FPS) at its fastest; folded for that rate",
              file=sys.stderr)
    if not target["fits"]:
        needs = ", ".join(f"{o['needed']:,} {name} of its {o['part']:,}" for name, o in target["over"].items())
        print(f"warning: the design does not fit the {target['part']} by the estimates: it needs {needs} "
              f"(at {target['reached_cycles']:,} cycles/frame); target not met", file=sys.stderr)
    if args.json:
        extra = {"deploy": str(Path(args.output) / "deploy")} if args.board else {}
        if args.bitstream:
            extra["bitstream"] = str(bitstream)
        _print_json({"build": str(args.output), **extra, **report})
        return 0
    print(f"built {args.output}: {len(report['layers'])} units, {t['max_est_cycles']} cycles/frame "
          f"(est. {report['est_fps']:.0f} FPS at {report['clock_mhz']} MHz), {t['est_luts']} LUTs, "
          f"{t['est_brams']} BRAM18, {t['est_dsps']} DSPs (estimates); report: {Path(args.output) / 'report.html'}")
    if target.get("binds"):
        print(f"the fastest folding that fits the {target['part']}; faster binds on {target['binds']['text']}")
    if args.board:
        print(f"deploy folder for {args.board}: {Path(args.output) / 'deploy'}; Vivado flow: "
              f"{Path(args.output) / 'vivado' / 'build.sh'}")
    if args.bitstream:
        print(f"bitstream: {bitstream}")
    return 0


def _progress(args: argparse.Namespace, title: str):
    """Progress of the command's steps on stderr where that is a terminal; none with `--quiet`, or
    into a log or pipe (where an error stays the one line that stderr holds)."""
    import contextlib

    from hwgen.progress import NO_PROGRESS, ConsoleProgress

    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        return contextlib.nullcontext(NO_PROGRESS)
    return ConsoleProgress(title)


def _print_json(data: dict) -> None:
    """`--json`: the command's results as one JSON object, the only thing on stdout."""
    print(json.dumps(data, indent=1, default=str))


def _apply_config(args: argparse.Namespace) -> None:
    """Options from `--config FILE` (a build.toml) where the command line does not give them; a
    target on the command line replaces both of the file's."""
    if not args.config:
        return
    from hwgen.config import read_config

    options = read_config(args.config)
    reference = options.pop("model", None)
    if args.model is None:
        if reference is None:
            raise HwgenError("names no model: give the MODEL on the command line", where=str(args.config))
        args.model = str(reference.check(where=str(args.config)))
    if args.target_cycles is not None or args.target_fps is not None:
        options.pop("target_cycles", None)
        options.pop("target_fps", None)
    for key, value in options.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.target_cycles is not None and args.target_fps is not None:
        raise HwgenError("gives both target_cycles and target_fps", where=str(args.config))


def cmd_sim(args: argparse.Namespace) -> int:
    from hwgen.simulate import simulate_build

    x = _load_npy(args.input)
    with _progress(args, "sim") as progress:
        y, stats = simulate_build(Path(args.build), x, stall_prob=args.stall_prob, seed=args.seed, progress=progress,
                                  **_cache(args))
    np.save(args.output, y)
    _refresh_page(args.build)
    if args.json:
        _print_json({"build": str(args.build), "output": str(args.output), **stats})
        return 0
    print(f"simulated {stats['frames']} frames: {stats['cycles_per_frame']:.1f} cycles/frame, "
          f"latency {stats['latency_cycles']} cycles")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from hwgen.simulate import verify_build

    x = _load_npy(args.input)
    labels = _load_labels(args.labels) if args.labels else None
    with _progress(args, "verify") as progress:
        result = verify_build(Path(args.build), x, stall_prob=args.stall_prob, labels=labels, progress=progress,
                              **_cache(args))
    _refresh_page(args.build)
    if args.json:
        _print_json({"build": str(args.build), **result.to_json()})
    else:
        print(result.summary())
    return 0 if result.passed else 1


def _load_labels(path: str) -> np.ndarray:
    """The class labels of `--labels`: a missing or unreadable file is named as `--labels` too."""
    try:
        return _load_npy(path)
    except HwgenError as exc:
        raise HwgenError(str(exc), where="--labels") from None


def _refresh_page(build: str) -> Path:
    """Rewrite OUT/report.html with what a command has just added to the build folder (sim.json,
    verify.json); `hwgen synth` does it inside `synthesize`."""
    from hwgen.reportpage import write_report_page

    return write_report_page(Path(build))


def cmd_report(args: argparse.Namespace) -> int:
    print(f"wrote {_refresh_page(args.build)}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from hwgen.config import build_part
    from hwgen.synth import synthesize

    part = args.part
    if args.board:
        from hwgen.deploy.boards import lookup_board

        part = lookup_board(args.board).part
    with _progress(args, "synth") as progress:
        report = synthesize(Path(args.build), part=part or build_part(args.build), jobs=args.jobs, progress=progress)
    r = report["synth"]
    if args.json:
        _print_json({"build": str(args.build), **r})
        return 0
    print(f"synthesized {args.build} for {r['part']} (Yosys): {r['luts']} LUTs, {r['ffs']} FFs, "
          f"{r['bram36']} BRAM36 + {r['bram18']} BRAM18, {r['dsp']} DSPs, at most {r['logic_levels']} levels "
          f"of logic in a unit; {'fits' if r['fits'] else 'does NOT fit'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hwgen.demo import run_demo

    run_demo(Path(args.output), epochs=args.epochs, frames=args.frames, **_cache(args))
    return 0


def cmd_boards(args: argparse.Namespace) -> int:
    from hwgen.deploy.boards import BOARDS

    print(f"{'board':<12}{'part':<24}{'PS':<5}{'fabric clock':>13}{'DRAM':>13}  description")
    for b in BOARDS.values():
        print(f"{b.name:<12}{b.part:<24}{b.ps:<5}{b.fclk_mhz:>9g} MHz{b.dram_mbytes_per_s:>8,.0f} MB/s  {b.description}")
    return 0


def cmd_zoo_list(args: argparse.Namespace) -> int:
    from hwgen.models.zoo import listing

    rows = listing()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'name':<20}{'family':<16}{'size':<10}{'parameters':>12}{'binary MACs':>16}  input")
    for r in rows:
        shape = "x".join(str(d) for d in r["input_shape"][1:])
        print(f"{r['name']:<20}{r['family']:<16}{r['size']:<10}{r['parameters']:>12,}{r['binary_macs']:>16,}  {shape}")
    return 0


def cmd_zoo_export(args: argparse.Namespace) -> int:
    from hwgen.models.zoo import export

    with _progress(args, "zoo export") as progress:
        progress.begin(f"{args.name} ({args.size}) to QONNX")
        path = export(args.name, args.output, size=args.size, seed=args.seed, checkpoint=args.checkpoint)
        progress.end(f"{args.name} ({args.size}) to QONNX")
    print(f"exported {args.name} ({args.size}) to {path}")
    return 0


def _cache(args: argparse.Namespace) -> dict:
    return {"cache_dir": Path(args.cache_dir)} if getattr(args, "cache_dir", None) else {}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwgen", description="BNN dataflow accelerators from Brevitas/QONNX")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build an accelerator from a QONNX model")
    b.add_argument("model", nargs="?", help="the QONNX file (default: the one --config names)")
    b.add_argument("-o", "--output", required=True, help="build folder")
    target = b.add_mutually_exclusive_group()
    target.add_argument("--target-cycles", type=int, help="cycles per frame to fold for")
    target.add_argument("--target-fps", type=_fps, help="frames per second to fold for, at --clock-mhz; "
                        "'max': the fastest folding that fits --part")
    b.add_argument("--clock-mhz", type=float, help="fabric clock (default: the board's, else 100)")
    b.add_argument("--board", help="also write OUT/deploy/ and OUT/vivado/ for this board (see `hwgen boards`)")
    b.add_argument("--part", help="the part --target-fps max must fit (default: the board's, else xc7z020)")
    b.add_argument("--bitstream", action="store_true", help="then run the Vivado flow (Vivado must be on PATH)")
    b.add_argument("--folding", help="FINN-style folding JSON: {\"Defaults\": {}, \"MVU_0\": {\"PE\": 16}}")
    b.add_argument("--config", help="a build.toml (as every build writes): its options, where not given here")
    b.add_argument("--from-step", help="restart the build in OUT from the checkpoint before this step "
                                       "(partition, to_hardware, fold, plumbing, rtl, report)")
    b.add_argument("--fifo-sizing", choices=FIFO_SIZING_MODES, default=None,
                   help="FIFO depths at joins: measured in Verilator, modelled from latencies, or auto (measured if small)")
    b.add_argument("--weight-memory", choices=WEIGHT_MEMORY_MODES, default=None,
                   help="MVU weights in the bitstream (rom), loaded after reset from OUT/rtl/weights.bin (loaded), "
                        "read from DRAM once per frame (dram: OUT/rtl/dram.bin, in OUT/deploy/ with --board), "
                        "the same with each convolution over its image held on chip, channel-major between them "
                        "(frame), "
                        "or auto: loaded into UltraRAM where --part has it and that saves block RAM, "
                        "from DRAM where block RAM cannot hold them")
    b.add_argument("--fifo-memory", choices=FIFO_MEMORY_MODES, default=None,
                   help="FIFOs at joins in block RAM or LUT RAM (chip), in rings in DRAM where they would take block "
                        "RAM (dram), or auto: in DRAM those the part cannot hold beside its compute units")
    b.set_defaults(func=cmd_build)

    s = sub.add_parser("sim", help="simulate a build in Verilator")
    s.add_argument("build")
    s.add_argument("--input", required=True, help=".npy of what the ONNX model takes")
    s.add_argument("--output", required=True, help=".npy to write what the ONNX model outputs")
    s.add_argument("--stall-prob", type=float, default=0.0, help="random valid/ready gaps on both streams")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_sim)

    v = sub.add_parser("verify", help="the model as given vs rtlsim: exit 0 only if bit-exact")
    v.add_argument("build")
    v.add_argument("--input", required=True)
    v.add_argument("--stall-prob", type=float, default=0.0)
    v.add_argument("--labels", help=".npy of integer class labels, one per frame: adds the top-1 accuracy of "
                                    "the model and of the accelerator to OUT/verify.json")
    v.set_defaults(func=cmd_verify)

    y = sub.add_parser("synth", help="Yosys synth_xilinx of a build: LUT/FF/BRAM/DSP into report.json")
    y.add_argument("build")
    part = y.add_mutually_exclusive_group()
    part.add_argument("--part", help="FPGA part (xc7z010, xc7z020, xczu3eg, xczu7ev, xck26...); default: the build's "
                      "(its --part, else its board's), else xc7z020clg400-1")
    part.add_argument("--board", help="the part of this board (see `hwgen boards`)")
    y.add_argument("--jobs", type=int, default=2, help="Yosys processes at a time")
    y.set_defaults(func=cmd_synth)

    r = sub.add_parser("report", help="rewrite OUT/report.html from the build folder (after sim, verify, synth)")
    r.add_argument("build")
    r.set_defaults(func=cmd_report)

    d = sub.add_parser("demo", help="train a small BNN on bundled MNIST, build, simulate, report")
    d.add_argument("-o", "--output", default="build/demo")
    d.add_argument("--epochs", type=int, default=3)
    d.add_argument("--frames", type=int, default=500, help="test images to run through rtlsim")
    d.set_defaults(func=cmd_demo)

    bl = sub.add_parser("boards", help="the boards hwgen builds for: part, PS, fabric clock")
    bl.set_defaults(func=cmd_boards)

    z = sub.add_parser("zoo", help="the model zoo: list it, or export a network as QONNX")
    zsub = z.add_subparsers(dest="zoo_command", required=True)
    zl = zsub.add_parser("list", help="name, family, size, parameters and binary MACs per frame")
    zl.add_argument("--json", action="store_true", help="print the table as JSON")
    zl.set_defaults(func=cmd_zoo_list)
    ze = zsub.add_parser("export", help="a zoo network as a QONNX file, random or from a checkpoint")
    ze.add_argument("name")
    ze.add_argument("--size", choices=("small", "imagenet"), default="small")
    ze.add_argument("--seed", type=int, default=0, help="seed of the random parameters")
    ze.add_argument("--checkpoint", help="a state_dict (.pt) to load instead of random parameters")
    ze.add_argument("-o", "--output", required=True, help="FILE.onnx")
    ze.set_defaults(func=cmd_zoo_export)

    from hwgen.train import add_arguments as add_train_arguments
    from hwgen.train import cmd_train

    t = sub.add_parser("train", help="train a zoo network in Brevitas on real data, export it as QONNX")
    add_train_arguments(t)
    t.set_defaults(func=cmd_train)

    for sp in (b, s, v, d):
        sp.add_argument("--cache-dir", help="Verilator build cache (default ~/.cache/hwgen)")
    for sp, results in ((b, "the report"), (s, "sim.json's figures"), (v, "verify.json's figures"),
                        (y, "the synthesis totals")):
        sp.add_argument("--json", action="store_true", help=f"print the results ({results}) as one JSON object on stdout")
        sp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

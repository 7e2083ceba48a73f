"""The papers' ImageNet networks on each board: the fastest folding that fits, weights on chip or
streamed from DRAM, against the goals of the board issue.

For every network (ImageNet size, random parameters of seed 0), in a process of its own: export to
QONNX and lower it to hardware units as `hwgen build` does (`graphs/04_to_hardware.onnx`), timed,
with the peak resident memory. Then for each board the folding that `hwgen build --board B
--target-fps max` chooses (`SetFolding` for the fastest rate that fits the board's part, with the
board's DRAM at its fabric clock: `hwgen.transforms.pipeline.dram_budget`, `--weight-memory auto`),
with the compute units' estimates: frames per second at the board's clock, LUT / BRAM18 / URAM /
DSP, DRAM MB/s against what the board carries. Where no folding fits, the cell is the build's own
error: the resource that binds, what the slowest folding needs of it, what the part has. The
plumbing (FIFOs, width converters) is not counted: folding leaves it 15 % of the LUTs.

Prints one JSON object and writes the Markdown table to `--table` (committed as
`benchmarks/results/boards_imagenet.md`, with the command that made it).

    .venv/bin/python benchmarks/bench_boards.py [--names reactnet-a bireal-18 ...] [--table FILE] [--json FILE]
    .venv/bin/python benchmarks/bench_boards.py --render FILE.json --table FILE.md   (the table of an earlier run)
    .venv/bin/python benchmarks/bench_boards.py --names reactnet-a --merge FILE.json ...   (rerun some rows)
    .venv/bin/python benchmarks/bench_boards.py --synth reactnet-a zcu104 --merge FILE.json ...
        (build NAME for BOARD at --target-fps max and synthesize it hierarchically with Yosys:
         the as-built estimates beside Yosys's totals; about 40 minutes for ReActNet-A)

Each row says which commit measured it (`measured_at`): rows rerun with `--merge` replace those
of the earlier run, the others keep theirs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGENET = ["reactnet-a", "bireal-18", "bireal-34", "binarydensenet-28", "binarydensenet-37",
            "abcnet-18-m1n1", "abcnet-18-m3n3", "abcnet-18-m5n5"]
BOARDS = ["pynq-z2", "ultra96-v2", "kv260", "zcu104"]
#: the issue's goals, frames per second per board (None: "fits, rate reported")
GOALS = {"reactnet-a": (100, 300, 500, 1000), "bireal-18": (200, 500, 1000, 2000),
         "abcnet-18-m1n1": (200, 500, 1000, 2000)}


def lower(name: str, work: Path) -> Path:
    """`name` at ImageNet size exported and lowered to hardware units, as a build's step 4."""
    from qonnx.transformation.general import GiveUniqueNodeNames

    from hwgen.frontend import load_onnx, prepare
    from hwgen.models.zoo import export
    from hwgen.transforms.partition import split_host_and_accelerator
    from hwgen.transforms.pipeline import STREAMLINE, TO_HARDWARE, apply_all

    export(name, work / f"{name}.onnx", "imagenet", seed=0)
    model = prepare(load_onnx(work / f"{name}.onnx")).transform(GiveUniqueNodeNames())
    model = apply_all(split_host_and_accelerator(apply_all(model, STREAMLINE)).accel, TO_HARDWARE)
    model.save(str(work / f"{name}_hw.onnx"))
    return work / f"{name}_hw.onnx"


def fold_for(hardware, options: dict, board_name: str) -> dict:
    """The fastest folding of `hardware` that fits the board, with its estimates, or the reason
    none does."""
    from hwgen.config import BuildConfig
    from hwgen.deploy.boards import lookup_board
    from hwgen.errors import HwgenError
    from hwgen.fit import uram_choice
    from hwgen.ops import unit_of
    from hwgen.parts import lookup_part
    from hwgen.transforms.hardware.set_folding import SetFolding
    from hwgen.transforms.pipeline import dram_budget
    from hwgen.units.datapath import uram_count

    board = lookup_board(board_name)
    cfg = BuildConfig(board=board_name, clock_mhz=board.fclk_mhz, target_fps="max")
    part, budget = lookup_part(cfg.fit_part), dram_budget(cfg)
    folding = SetFolding(None, part, options, dram=budget)
    t = time.perf_counter()
    try:
        chosen = folding.choose(hardware)
    except HwgenError as exc:
        return {"fits": False, "limit": str(exc).split(": ", 1)[-1], "fold_seconds": round(time.perf_counter() - t, 1)}
    fixed = [unit_of(hardware, n) for n in hardware.graph.node if n.name not in chosen]
    picks = list(chosen.values())
    cycles = max([o.cycles for o in picks] + [u.est_cycles() for u in fixed])
    dram_bytes = sum(o.dram_bytes for o in picks)
    cycles = max(cycles, int(dram_bytes * board.fclk_mhz / board.dram_mbytes_per_s) + 1) if dram_bytes else cycles
    weights = [m for o in picks if not o.dram_bytes for m in o.unit.ram_weight_memories()]
    urams = sum(uram_count(d, w) for (d, w), u in zip(weights, uram_choice(weights, part.uram)) if u) if part.uram else 0
    fps = board.fclk_mhz * 1e6 / cycles
    images = sum(o.dram_bytes // o.passes for o in picks if o.dram_bytes)
    return {
        "fits": True, "fps": round(fps, 1), "cycles": cycles,
        "luts": sum(o.resources[0] for o in picks) + sum(u.est_luts() for u in fixed),
        "bram18": folding._block_ram(chosen) + sum(u.est_brams() for u in fixed), "uram": urams,
        "dsps": sum(o.resources[2] for o in picks) + sum(u.est_dsps() for u in fixed),
        "dram_layers": sum(1 for o in picks if o.dram_bytes),
        "dram_mbytes_per_s": round(dram_bytes * fps / 1e6, 1), "board_mbytes_per_s": round(board.dram_mbytes_per_s, 1),
        # how often a frame reads the DRAM layers' weights, on average (their passes)
        "dram_reads_per_frame": round(dram_bytes / images, 1) if images else 0,
        "binds": folding.limit.describe(board.fclk_mhz),
        "part": {"luts": part.luts, "bram18": part.bram18, "uram": part.uram, "dsp": part.dsp},
        "fold_seconds": round(time.perf_counter() - t, 1),
    }


def phase(name: str, work: Path) -> dict:
    from qonnx.core.modelwrapper import ModelWrapper

    from hwgen.transforms.hardware.set_folding import fold_options

    t = time.perf_counter()
    hardware = ModelWrapper(str(lower(name, work)))
    options = fold_options(hardware)  # listed once for every board
    lowered = time.perf_counter() - t
    boards = {board: fold_for(hardware, options, board) for board in BOARDS}
    return {"name": name, "measured_at": _commit(), "lower_seconds": round(lowered, 1),
            "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "boards": boards}


def synth_row(name: str, board_name: str, work: Path) -> dict:
    """`name` (ImageNet size) built for the board at its fastest fitting rate, as `hwgen build
    --board B --target-fps max` does, then synthesized hierarchically (`hwgen.synth`): the
    build's estimates beside Yosys's totals, or the build's own error where it does not fit."""
    from hwgen.builder import build
    from hwgen.config import BuildConfig
    from hwgen.deploy.boards import lookup_board
    from hwgen.errors import HwgenError
    from hwgen.models.zoo import export
    from hwgen.synth import synthesize

    board = lookup_board(board_name)
    row = {"name": name, "board": board_name, "measured_at": _commit()}
    path = export(name, work / f"{name}.onnx", "imagenet", seed=0)
    t = time.perf_counter()
    try:
        report = build(path, work / "b", BuildConfig(board=board_name, clock_mhz=board.fclk_mhz, target_fps="max"))
    except HwgenError as exc:
        return {**row, "built": False, "error": str(exc), "build_seconds": round(time.perf_counter() - t)}
    row["build_seconds"] = round(time.perf_counter() - t)
    t = time.perf_counter()
    report = synthesize(work / "b", part=board.part, jobs=1)
    return {**row, **as_built(report, board.part), "synth_seconds": round(time.perf_counter() - t)}


def as_built(report: dict, part_name: str) -> dict:
    """A synthesized build's `report.json`: its rate on the part, its estimates and Yosys's totals."""
    part = next(p for p in report["parts"] if part_name.startswith(p["part"]))
    return {"built": True, "fps": round(part["fps"], 1),
            "estimate": {k: report["totals"][k] for k in ("est_luts", "est_brams", "est_urams", "est_dsps")},
            "yosys": report["synth"],
            "part": {"luts": part["luts"], "bram18": part["bram18"], "uram": part["uram"], "dsp": part["dsp"]}}


def synth_table(rows: list[dict]) -> str:
    """The hierarchical Yosys totals of the as-built designs, beside their estimates."""
    if not rows:
        return ""
    lines = ["", "Built with `--board B --target-fps max` and synthesized hierarchically with Yosys "
             "(`--synth NAME BOARD`): every unit and the top, estimate / Yosys against the part. "
             "BRAM18 counts a RAMB36 as two.", "",
             "| network | board | FPS as built | LUT | FF | BRAM18 | URAM | DSP | fits | build s / Yosys s | measured at |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["built"]:
            lines.append(f"| {r['name']} | {r['board']} | does not build: {r['error']} | | | | | | no | "
                         f"{r['build_seconds']} / - | {r['measured_at']} |")
            continue
        e, y, p = r["estimate"], r["yosys"], r["part"]
        lines.append(
            f"| {r['name']} | {r['board']} | {r['fps']:,.1f} | {e['est_luts']:,} / {y['luts']:,} of {p['luts']:,} | "
            f"{y['ffs']:,} | {e['est_brams']:,} / {y['bram18'] + 2 * y['bram36']:,} of {p['bram18']:,} | "
            f"{e['est_urams']} / {y['uram']} of {p['uram']} | {e['est_dsps']:,} / {y['dsp']:,} of {p['dsp']:,} | "
            f"{'yes' if y['fits'] else 'no'} | {r['build_seconds']} / {r['synth_seconds']} | {r['measured_at']} |")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    """The commit the benchmark runs at (with `+` where the tree has changes of its own)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")


def cell(result: dict, goal: float | None) -> str:
    if not result["fits"]:
        return f"does not fit: {result['limit']}"
    mark = "" if goal is None else (" (goal met)" if result["fps"] >= goal else f" (goal {goal:,})")
    layers = result["dram_layers"]
    reads = (f", their weights read {result['dram_reads_per_frame']:,g} times a frame"
             if layers and "dram_reads_per_frame" in result else "")
    binds = f"; faster binds on {result['binds']}" if "binds" in result else ""
    return (f"{result['fps']:,.0f} FPS{mark}: {result['luts']:,} / {result['bram18']:,} / {result['uram']} / "
            f"{result['dsps']:,}; DRAM {result['dram_mbytes_per_s']:,.0f} of {result['board_mbytes_per_s']:,.0f} MB/s "
            f"({layers} layer{'' if layers == 1 else 's'} in DRAM{reads}){binds}")


HEADER = ("Estimates of hwgen's resource model for the folding `hwgen build --board B --target-fps max` "
          "chooses (weights on chip, in UltraRAM where the part has it, in DRAM where block RAM cannot hold "
          "them), compute units only, at the board's clock (PYNQ-Z2 100 MHz, Ultra96-V2 150, KV260 and ZCU104 "
          "200). A cell: FPS (against the goal where the issue sets one): LUT / BRAM18 / URAM / DSP; DRAM "
          "MB/s against what the board carries, and how often a frame reads the weights of the layers in DRAM "
          "(their passes: a pass re-reads every weight, and block RAM holds a pass of input and output); "
          "then what stops a faster folding (`report.json` `target.binds`): the resource the next faster one "
          "needs beyond the part, the DRAM bandwidth where it would fit with a DRAM that carried anything, or "
          "the pipeline's own minimum. Where nothing fits, the build's own message: the resource "
          "that binds at the slowest folding. Last column: export and lowering to hardware units, seconds, "
          "and the peak resident memory. The FIFOs that plumbing adds after folding are not counted here; "
          "a build folds again to leave them their block RAM: ReActNet-A built for the ZCU104 with "
          "`--target-fps max` runs at 498 FPS. ReActNet-A for the PYNQ-Z2 builds since 6e63c96 (its FIFOs at "
          "joins in rings in DRAM where no folding fits beside the LUTs plumbing takes): 2.6 FPS, 47,271 LUTs "
          "and 280 BRAM18 of the xc7z020 by the estimates (`-m slow`), and Yosys confirms the fit (its row "
          "below: 47,564 LUTs, 279 BRAM18). A row's last column is the commit that measured it.")


def table(results: list[dict], command: str, synth_rows: list[dict] | None = None) -> str:
    lines = [f"`{command}`", "", HEADER, "",
             "| network | " + " | ".join(BOARDS) + " | lower s / peak MiB | measured at |",
             "|---|" + "---|" * (len(BOARDS) + 2)]
    for r in results:
        goals = GOALS.get(r["name"], (None,) * len(BOARDS))
        lines.append(f"| {r['name']} | " + " | ".join(cell(r["boards"][b], g) for b, g in zip(BOARDS, goals))
                     + f" | {r['lower_seconds']} / {r['peak_mib']:,} | {r.get('measured_at', 'an earlier run')} |")
    return "\n".join(lines) + "\n" + synth_table(synth_rows or [])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", nargs="+", default=IMAGENET)
    p.add_argument("--table", type=Path, help="write the Markdown table here")
    p.add_argument("--json", type=Path, help="write the JSON here too")
    p.add_argument("--render", type=Path, help="write --table from this earlier run's JSON, running nothing")
    p.add_argument("--merge", type=Path, help="an earlier run's JSON whose rows those run now replace")
    p.add_argument("--synth", nargs=2, metavar=("NAME", "BOARD"),
                   help="build NAME for BOARD at --target-fps max and synthesize it (a row of the Yosys table)")
    p.add_argument("--phase", nargs=2, metavar=("NAME", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    command = "python benchmarks/bench_boards.py --json benchmarks/results/boards_imagenet.json " \
              "--table benchmarks/results/boards_imagenet.md"
    if args.render:
        earlier = json.loads(args.render.read_text())
        args.table.write_text(table(earlier["results"], command, earlier.get("synth", [])))
        return
    if args.synth:
        with tempfile.TemporaryDirectory() as tmp:
            row = synth_row(*args.synth, Path(tmp))
        print(json.dumps(row))
        if args.merge:
            out = json.loads(args.merge.read_text())
            out["synth"] = [r for r in out.get("synth", []) if (r["name"], r["board"]) != tuple(args.synth)] + [row]
            (args.json or args.merge).write_text(json.dumps(out, indent=1) + "\n")
            if args.table:
                args.table.write_text(table(out["results"], command, out["synth"]))
        return
    if args.phase:
        print(json.dumps(phase(args.phase[0], Path(args.phase[1]))))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:  # one at a time: an ImageNet network's lowering takes GBs
            proc = subprocess.run([sys.executable, __file__, "--phase", name, tmp], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name}: {proc.stderr.strip().splitlines()[-1]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), file=sys.stderr)
    if args.merge:
        rerun = {r["name"]: r for r in results}
        earlier = json.loads(args.merge.read_text())["results"]
        results = [rerun.pop(r["name"], r) for r in earlier] + list(rerun.values())
    out = {"boards": BOARDS, "results": results,
           "synth": json.loads(args.merge.read_text()).get("synth", []) if args.merge else []}
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.table:
        args.table.write_text(table(results, command, out["synth"]))


if __name__ == "__main__":
    main()

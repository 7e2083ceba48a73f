"""Weights once a frame (`--weight-memory frame`) against weights in one pass (`dram`) on an ImageNet
network: the estimates of every op after folding and plumbing, for a board at a target.

The network (ImageNet size, random parameters of seed 0) is exported and lowered as `hwgen build`
does (`bench_boards.lower`), folded for `--cycles` (`--weight-memory frame` and `dram` both fold
as for DRAM; folding does not weigh either's buffers), and plumbed with modelled FIFO depths, the
FIFOs on chip. Per mode: LUT / BRAM18 / DSP by op, the totals against the board's part, the DRAM
MB/s at the board's clock, the slowest unit's cycles. Prints one JSON object (and writes it to
`--json`); each result names the commit that measured it.

    .venv/bin/python benchmarks/bench_frame.py --name reactnet-a --board pynq-z2 --cycles 1000000 [--json FILE]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_boards import _commit, lower  # noqa: E402


def estimates(hardware: Path, board_name: str, cycles: int, mode: str) -> dict:
    """The plumbed design's estimates by op and against the board's part."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hwgen.config import BuildConfig
    from hwgen.deploy.boards import lookup_board
    from hwgen.fit import part_fit
    from hwgen.ops import unit_of
    from hwgen.parts import lookup_part
    from hwgen.transforms.pipeline import FOLD, PLUMBING, apply_all

    board = lookup_board(board_name)
    cfg = BuildConfig(board=board_name, clock_mhz=board.fclk_mhz, target_cycles=cycles, weight_memory=mode,
                      fifo_sizing="modelled", fifo_memory="chip")
    start = time.perf_counter()
    plumbed = apply_all(apply_all(ModelWrapper(str(hardware)), FOLD(cfg)), PLUMBING(cfg))
    units = [(node.op_type, unit_of(plumbed, node)) for node in plumbed.graph.node]
    by_op: dict[str, dict[str, int]] = collections.defaultdict(lambda: {"count": 0, "luts": 0, "bram18": 0, "dsps": 0})
    for op, unit in units:
        row = by_op[op]
        row["count"] += 1
        row["luts"] += int(unit.est_luts())
        row["bram18"] += int(unit.est_brams())
        row["dsps"] += int(unit.est_dsps())
    slowest = max(unit.est_cycles() for _, unit in units)
    fit = part_fit([unit for _, unit in units], slowest, lookup_part(cfg.fit_part))
    return {"mode": mode, "max_est_cycles": slowest, "fps": round(board.fclk_mhz * 1e6 / slowest, 1),
            "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1]["bram18"])),
            "fit": {key: fit[key] for key in ("part", "est_luts", "luts", "est_bram18", "bram18", "est_dsps", "dsp")}
            | {"dram_mbytes_per_s": round(sum(u.dram_bytes_per_frame() for _, u in units) * board.fclk_mhz
                                          / slowest, 1), "available_mbytes_per_s": fit["dram_mbytes_per_s"],
               "fits": fit["fits"]},
            "seconds": round(time.perf_counter() - start), "measured_at": _commit()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default="reactnet-a")
    p.add_argument("--board", default="pynq-z2")
    p.add_argument("--cycles", type=int, default=1_000_000)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hardware = lower(args.name, Path(tmp))
        out = {"name": args.name, "board": args.board, "cycles": args.cycles,
               "results": [estimates(hardware, args.board, args.cycles, mode) for mode in ("frame", "dram")]}
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

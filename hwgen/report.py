"""`report.json`: per-layer folding and estimates, the contract other tools read.

Keys (exactly): `clock_mhz`, `est_fps`, `fifo_sizing`, `dram` (`bytes_per_frame` the units read
from DRAM, `mbytes_per_s` at `est_fps`, `available_mbytes_per_s`: the board's, else the part's),
`requantization` (how many units requantize
by `arithmetic`, by `thresholds` and by a `table`, and in `kept` why each table or large threshold
set could not be arithmetic), `layers` (each: `name`, `op`, `PE`, `SIMD`, `MW`, `MH`,
`est_cycles`, `est_luts`, `est_brams`, `est_dsps`; null where a key does not apply), `totals`
(`est_luts`, `est_brams`, `est_dsps`, `max_est_cycles`) and `parts` (per part of xc7z020, xczu3eg,
xczu7ev, xck26: `part`, `clock_mhz`, capacities `luts`, `bram18`, `uram`, `dsp`,
`dram_mbytes_per_s`, needs `weight_bits`, `threshold_bits`, `est_luts`, `est_bram18`, `est_uram`,
`est_dsps`, `est_dram_mbytes_per_s`, `fits` and
`fps` at that clock; `hwgen.fit`) and `target` (`cycles`: the cycles per frame asked for, null for
the fastest folding that fits; `reached_cycles`: the slowest unit's; `limited_by`: that unit;
`part`: the part folded for; `fits`: the design within it by the estimates; `over`: each resource
it needs beyond the part, `needed` and the `part`'s; `met`: the rate reached and the design
fitting; `binds`: for the fastest folding that fits, what stops a faster one, null otherwise:
`resource` (LUTs, BRAM18, DSPs, "DRAM MB/s", or "cycles" where the pipeline goes no faster),
`need` and `have` of it at `faster_cycles`, `unit` for "cycles", and `text`, in words).
`est_brams` counts 18 Kb block RAMs. Each layer also has `depth` (the FIFO depth in beats for `StreamingFifo`, null otherwise). `fifo_sizing`
says how the FIFOs at joins got their depths ("measured" or "modelled"; a chain's FIFOs are
always modelled: two beats, more behind a unit that sends in bursts). `hwgen synth` adds `synth` blocks.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper

from hwgen.deploy.boards import Board
from hwgen.fit import dram_mbytes_per_s, overuse, part_fit, parts_table
from hwgen.ops import PLUMBING_OPS, unit_of
from hwgen.parts import Part
from hwgen.transforms.hardware.requantization import requantization_counts
from hwgen.transforms.hardware.set_folding import FOLD_LIMIT_KEY, FoldLimit
from hwgen.transforms.hardware.size_fifos import SIZING_KEY


def build_report(model: ModelWrapper, clock_mhz: float, target_cycles: int | None, part: Part,
                 board: Board | None = None) -> dict:
    """The report of the folded, plumbed accelerator graph `model`; `target_cycles` as folding
    aimed (None: the fastest that fits), `part` the one it was folded for (`BuildConfig.fit_part`):
    the target is met only where the rate is reached and the design fits it. `board`: the one
    built for, whose DRAM bandwidth the `dram` entry counts (else the part's, `hwgen.fit`)."""
    layers, units = [], []
    for node in model.graph.node:
        unit = unit_of(model, node)
        units.append(unit)
        layers.append({
            "name": node.name,
            "op": node.op_type,
            "PE": getattr(unit, "PE", None),
            "SIMD": getattr(unit, "SIMD", None),
            "MW": getattr(unit, "MW", None),
            "MH": getattr(unit, "MH", None),
            "est_cycles": int(unit.est_cycles()),
            "est_luts": int(unit.est_luts()),
            "est_brams": int(unit.est_brams()),
            "est_dsps": int(unit.est_dsps()),
            "est_urams": int(unit.est_urams()),
            "weights_loaded": bool(getattr(unit, "weights_loaded", False)),
            # multi-bit products built in LUTs, or two to a DSP, where the part's DSPs ran short (`SetFolding`)
            "products_in_luts": bool(getattr(unit, "products_in_luts", False)),
            "packed_products": bool(getattr(unit, "packed_products", False)),
            "depth": getattr(unit, "depth", None),  # FIFOs: beats they hold
            "MMV": getattr(unit, "MMV", None),  # window generators: window pieces per beat
        })
    max_cycles = max(layer["est_cycles"] for layer in layers)
    # the compute unit that sets the rate (the FIFOs and converters beside it move as many beats)
    slowest = next((layer["name"] for layer in layers if layer["est_cycles"] == max_cycles
                    and layer["op"] not in PLUMBING_OPS), layers[0]["name"])
    sizing = model.get_metadata_prop(SIZING_KEY)
    fit = part_fit(units, max_cycles, part)
    over = overuse(fit)
    dram_bytes = sum(u.dram_bytes_per_frame() for u in units)
    return {
        "clock_mhz": clock_mhz,
        "est_fps": clock_mhz * 1e6 / max_cycles,
        "fifo_sizing": sizing,
        "layers": layers,
        "totals": {
            "est_luts": sum(layer["est_luts"] for layer in layers),
            "est_brams": sum(layer["est_brams"] for layer in layers),
            "est_dsps": sum(layer["est_dsps"] for layer in layers),
            "est_urams": sum(layer["est_urams"] for layer in layers),
            "max_est_cycles": max_cycles,
        },
        "dram": {"bytes_per_frame": dram_bytes,
                 "mbytes_per_s": round(dram_bytes * clock_mhz / max_cycles, 1),
                 # FIFOs at joins whose beats go through a ring in DRAM (`hwgen.units.dram_fifo`), and
                 # their share of the bytes
                 "fifos": [layer["name"] for layer in layers if layer["op"] == "DramFifo"],
                 "fifo_bytes_per_frame": sum(u.dram_bytes_per_frame() for u in units if u.dram_writes()),
                 "available_mbytes_per_s": round(board.dram_mbytes_per_s if board else dram_mbytes_per_s(part), 1)},
        "parts": parts_table(units, max_cycles),
        "requantization": requantization_counts(model),
        "target": {"cycles": target_cycles, "reached_cycles": max_cycles,
                   "met": (target_cycles is None or max_cycles <= target_cycles) and not over,
                   "limited_by": slowest, "part": part.device, "fits": not over,
                   "over": {name: {"needed": need, "part": have} for name, (need, have) in over.items()},
                   "binds": fold_limit(model, clock_mhz, target_cycles)},
    }


def fold_limit(model: ModelWrapper, clock_mhz: float, target_cycles: int | None) -> dict | None:
    """What `SetFolding` found stops a faster folding (`FoldLimit`), with its sentence; None
    where a rate was asked for."""
    recorded = model.get_metadata_prop(FOLD_LIMIT_KEY)
    if target_cycles is not None or not recorded:
        return None
    limit = FoldLimit(**json.loads(recorded))
    return {**asdict(limit), "text": limit.describe(clock_mhz)}


def write_json_atomically(path: Path, data: dict) -> None:
    """Write `path` so that it either holds the whole document or does not exist."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)

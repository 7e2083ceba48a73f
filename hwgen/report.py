"""`report.json`: per-layer folding and estimates, the contract other tools read.

Keys (exactly): `clock_mhz`, `est_fps`, `fifo_sizing`, `layers` (each: `name`, `op`, `PE`, `SIMD`, `MW`, `MH`,
`est_cycles`, `est_luts`, `est_brams`, `est_dsps`; null where a key does not apply), `totals`
(`est_luts`, `est_brams`, `est_dsps`, `max_est_cycles`) and `parts` (per part of xc7z020, xczu3eg,
xczu7ev, xck26: `part`, `clock_mhz`, capacities `luts`, `bram18`, `uram`, `dsp`, needs
`weight_bits`, `threshold_bits`, `est_luts`, `est_bram18`, `est_uram`, `est_dsps`, `fits` and
`fps` at that clock; `hwgen.fit`). `est_brams` counts 18 Kb block RAMs. Each layer
also has `depth` (the FIFO depth in beats for `StreamingFifo`, null otherwise). `fifo_sizing`
says how the FIFOs at joins got their depths ("measured", "modelled", or null for a chain, where
none needed sizing). `hwgen synth` adds `synth` blocks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper

from hwgen.fit import parts_table
from hwgen.ops import unit_of
from hwgen.transforms.hardware.size_fifos import SIZING_KEY


def build_report(model: ModelWrapper, clock_mhz: float) -> dict:
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
            "depth": getattr(unit, "depth", None),  # FIFOs: beats they hold
        })
    max_cycles = max(layer["est_cycles"] for layer in layers)
    sizing = model.get_metadata_prop(SIZING_KEY)
    return {
        "clock_mhz": clock_mhz,
        "est_fps": clock_mhz * 1e6 / max_cycles,
        "fifo_sizing": sizing,
        "layers": layers,
        "totals": {
            "est_luts": sum(layer["est_luts"] for layer in layers),
            "est_brams": sum(layer["est_brams"] for layer in layers),
            "est_dsps": sum(layer["est_dsps"] for layer in layers),
            "max_est_cycles": max_cycles,
        },
        "parts": parts_table(units, max_cycles),
    }


def write_json_atomically(path: Path, data: dict) -> None:
    """Write `path` so that it either holds the whole document or does not exist."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)

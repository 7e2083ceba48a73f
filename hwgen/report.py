"""`report.json`: per-layer folding and estimates, the contract other tools read.

Keys (exactly): `clock_mhz`, `est_fps`, `layers` (each: `name`, `op`, `PE`, `SIMD`, `MW`, `MH`,
`est_cycles`, `est_luts`, `est_brams`, `est_dsps`; null where a key does not apply) and `totals`
(`est_luts`, `est_brams`, `est_dsps`, `max_est_cycles`). `est_brams` counts 18 Kb block RAMs. Each layer
also has `depth` (the FIFO depth in beats for `StreamingFifo`, null otherwise); `hwgen synth`
adds `synth` blocks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper

from hwgen.ops import unit_of


def build_report(model: ModelWrapper, clock_mhz: float) -> dict:
    layers = []
    for node in model.graph.node:
        unit = unit_of(model, node)
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
    return {
        "clock_mhz": clock_mhz,
        "est_fps": clock_mhz * 1e6 / max_cycles,
        "layers": layers,
        "totals": {
            "est_luts": sum(layer["est_luts"] for layer in layers),
            "est_brams": sum(layer["est_brams"] for layer in layers),
            "est_dsps": sum(layer["est_dsps"] for layer in layers),
            "max_est_cycles": max_cycles,
        },
    }


def write_json_atomically(path: Path, data: dict) -> None:
    """Write `path` so that it either holds the whole document or does not exist."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)

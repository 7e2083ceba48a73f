"""ABC-Net's two lowerings of one layer, measured with Yosys (synth_xilinx, xc7z020).

One ABC-Net (M, N) 3x3 convolution of C -> C channels, sum_{m,n} alpha_m beta_n conv(B_m, A_n), at
the same throughput (PE x SIMD) both ways:

- multi-level: one MVU of integer weights W = sum_m a_m B_m and integer activations
  A = sum_n b_n A_n, fed by the N - 1 adds that form A from the N signs (what hwgen builds);
- M x N XNOR: one XNOR-popcount MVU per pair (m, n), their M*N accumulators summed with the
  integer coefficients a_m * b_n by M*N - 1 two-input adds.

Both need the N signs A_n of the input and the thresholds after the sum; those are left out. The
coefficients and bases are those `ABCConv` draws (`randomize_`, seed 0). The M*N XNOR units differ
only in their weights: one is synthesized and counted M*N times; adds of equal shape once each.
Prints one JSON object: per lowering the units and their LUT / FF / BRAM18 / DSP, and the totals.

    .venv/bin/python benchmarks/bench_abcnet_layer.py [--m 3] [--n 3] [--channels 64] [--pe 8] [--simd 32]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from qonnx.core.datatype import DataType

from hwgen.models.abcnet import ALPHA_BITS, BETA_BITS, ABCConv, binarize, fixed_point
from hwgen.rtl.emit import to_rtlil
from hwgen.synth.yosys import RESOURCES, SynthRun, find_yosys, verilog_for_synthesis
from hwgen.transforms.graph import int_dtype_for_range
from hwgen.units.add_streams import AddStreams, sum_dtype
from hwgen.units.mvu import MVU, accumulator_dtype


def layer(m: int, n: int, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bases B (M, K, C) as 0/1, integer alpha levels a (M,), integer beta levels b (N,))."""
    conv = ABCConv(channels, channels, 3, 1, m, n, 8.0)
    conv.randomize_(torch.Generator().manual_seed(0))
    conv.activations.randomize_(torch.Generator().manual_seed(1))
    with torch.no_grad():
        bases = (binarize(conv.latent) > 0).int().reshape(m, channels, -1).permute(0, 2, 1).numpy()  # (M, K, C)
        a = (fixed_point(conv.alpha, ALPHA_BITS) * 2 ** ALPHA_BITS).round().int().numpy()
        b = (fixed_point(conv.activations.beta, BETA_BITS) * 2 ** BETA_BITS).round().int().numpy()
    return bases, a, b


def adder_chain(dtypes: list, coefficients: list[int], channels: int, pe: int, pixels: int) -> list[AddStreams]:
    """sum_i c_i x_i as a chain of two-input adds: (c_0 x_0 + c_1 x_1), then (1 * that + c_2 x_2), ..."""
    adds, acc = [], dtypes[0]
    for i in range(1, len(dtypes)):
        alpha = coefficients[0] if i == 1 else 1
        out = sum_dtype(acc, dtypes[i], alpha, coefficients[i])
        adds.append(AddStreams(channels, pe, pixels, acc, dtypes[i], alpha, coefficients[i], out))
        acc = out
    return adds


def lowerings(m: int, n: int, channels: int, pe: int, simd: int, pixels: int) -> dict[str, list]:
    bases, a, b = layer(m, n, channels)
    k = bases.shape[1]
    bipolar = DataType["BIPOLAR"]
    # multi-level: A = sum_n b_n A_n from n bipolar streams, W = sum_m a_m B_m
    w = np.einsum("m,mkc->kc", a, 2 * bases - 1)
    w_dtype = int_dtype_for_range(w.min(), w.max())
    a_adds = adder_chain([bipolar] * n, [int(x) for x in b], channels, pe, pixels) if n > 1 else []
    a_dtype = a_adds[-1].output_dtype if a_adds else bipolar
    multi = MVU(k, channels, pe, simd, a_dtype, w_dtype, w, None,
                accumulator_dtype(a_dtype, w_dtype, w), vectors_per_frame=pixels)
    # M x N XNOR: popcounts of (B_m, A_n), summed with a_m * b_n
    binary = DataType["BINARY"]
    xnor = MVU(k, channels, pe, simd, binary, binary, bases[0], None,
               accumulator_dtype(binary, binary, bases[0]), vectors_per_frame=pixels)
    coefficients = [int(a[i] * b[j]) for i in range(m) for j in range(n)]
    sums = adder_chain([xnor.output_dtype] * (m * n), coefficients, channels, pe, pixels) if m * n > 1 else []
    return {"multi_level": [multi] + a_adds, "xnor_mxn": [xnor] * (m * n) + sums}


def synthesize(units: list, work: Path, yosys: Path, cache: dict) -> list[dict]:
    rows = []
    for unit in units:
        key = repr(unit) if not isinstance(unit, MVU) else (unit.MW, unit.MH, unit.PE, unit.SIMD,
                                                             unit.input_dtype.name, unit.weight_dtype.name)
        if key not in cache:
            name = f"u{len(cache)}"
            (work / "rtl" / f"{name}.il").write_text(to_rtlil(unit.component(), name))
            source = verilog_for_synthesis(work, f"rtl/{name}.il")
            result = SynthRun(name, (source,)).run(yosys, work, "xc7")
            cache[key] = {r: result[r] for r in RESOURCES}
        rows.append({"unit": type(unit).__name__, "est_luts": unit.est_luts(), **cache[key]})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, default=3)
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--pe", type=int, default=8)
    p.add_argument("--simd", type=int, default=32)
    p.add_argument("--pixels", type=int, default=16 * 16)
    args = p.parse_args()
    yosys = find_yosys()
    result: dict = {"layer": {"M": args.m, "N": args.n, "kernel": 3, "channels": args.channels,
                              "PE": args.pe, "SIMD": args.simd, "pixels": args.pixels}, "part": "xc7z020"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "rtl").mkdir()
        (work / "synth").mkdir()
        cache: dict = {}
        for name, units in lowerings(args.m, args.n, args.channels, args.pe, args.simd, args.pixels).items():
            rows = synthesize(units, work, yosys, cache)
            result[name] = {"units": rows, "cycles": max(u.est_cycles() for u in units),
                            "total": {r: sum(row[r] for row in rows) for r in ("est_luts", *RESOURCES)}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

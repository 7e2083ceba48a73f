"""The host's float ends of an accelerator (`host_pre.onnx`, `host_post.onnx`) as data that numpy
runs: a board image has neither onnxruntime nor qonnx.

A program is JSON: {"input": name, "output": name, "output_dtype": numpy name, "constants":
{name: {"shape", "dtype", "data"}}, "ops": [{"op", "inputs", "outputs", ...attributes}]}, the
ONNX graph's nodes in order (none: the input, as the output's element type). Each op is
computed in float32 as QONNX execution computes it (elementwise IEEE operations, qonnx's own
formulas for Quant, BipolarQuant and MultiThreshold); `hwgen.deploy.host_program` writes a
program from the ONNX graph and checks that it gives the same bits as QONNX execution.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hwgen.errors import HwgenError

_ELEMENTWISE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
}


def _rounding(mode: str) -> Callable[[np.ndarray], np.ndarray]:
    modes = {
        "ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor, "DOWN": np.fix,
        "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)),
        "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
        "HALF_DOWN": lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5),
    }
    if mode.upper() not in modes:
        raise HwgenError(f"unknown rounding mode {mode!r}", where="host program")
    return modes[mode.upper()]


def _quant(x, scale, zeropt, bits, op: dict) -> np.ndarray:
    """qonnx's Quant: scale, clamp, round, rescale, in the input's float type."""
    y = x / scale + zeropt
    bits = int(np.asarray(bits).reshape(-1)[0])
    signed, narrow = bool(op.get("signed", 1)), bool(op.get("narrow", 0))
    if bits == 1 and signed:
        y = np.where(y >= 0.0, np.ones_like(y), -np.ones_like(y))
    else:
        lo = -(2 ** (bits - 1)) + (1 if narrow else 0) if signed else 0
        hi = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1 - (1 if narrow else 0)
        y = np.where(y > hi, np.asarray(hi, y.dtype), y)
        y = np.where(y < lo, np.asarray(lo, y.dtype), y)
        y = _rounding(op.get("rounding_mode", "ROUND"))(y)
    return (y - zeropt) * scale


def _multithreshold(x, thresholds, op: dict) -> np.ndarray:
    """qonnx's MultiThreshold: the channel axis is where `data_layout` puts "C" (by rank when
    there is none), the count of thresholds passed scaled and biased."""
    layout = op.get("data_layout") or {2: "NC", 3: "NWC", 4: "NCHW"}.get(x.ndim)
    cdim = layout.index("C") if layout and "C" in layout else 1
    v = np.moveaxis(x.swapaxes(cdim, 1), 1, -1)
    count = np.count_nonzero(v[..., None] >= thresholds, axis=-1).astype(x.dtype)
    count = np.moveaxis(count, -1, 1).swapaxes(cdim, 1)
    return float(op.get("out_scale", 1.0)) * count + float(op.get("out_bias", 0.0))


def _batchnorm(x, scale, bias, mean, var, epsilon: float) -> np.ndarray:
    """Inference BatchNormalization as onnxruntime's CPU kernel computes it: a per-channel scale
    scale / sqrt(var + eps) and bias B - mean * that scale, then x * scale + bias, in float32."""
    f32 = np.float32
    inv_std = f32(1) / np.sqrt(var.astype(f32) + f32(epsilon))
    new_scale = inv_std * scale.astype(f32)
    new_bias = bias.astype(f32) - mean.astype(f32) * new_scale
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * new_scale.reshape(shape) + new_bias.reshape(shape)


def _reshape(x, shape) -> np.ndarray:
    """ONNX Reshape (0 keeps the axis); the first axis is the batch, whatever the constant says
    (exported graphs fix it to 1), as `hwgen.execute` runs them."""
    shape = [int(d) for d in np.asarray(shape).reshape(-1)]
    shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    if shape and shape[0] != -1:
        shape[0] = x.shape[0]
    return x.reshape(shape)


def _run_op(op: dict, args: list[np.ndarray]) -> list[np.ndarray]:
    kind = op["op"]
    if kind in _ELEMENTWISE:
        return [_ELEMENTWISE[kind](args[0], args[1]).astype(np.result_type(args[0], args[1]))]
    if kind == "Quant":
        return [_quant(*args[:4], op)]
    if kind == "BipolarQuant":
        x, scale = args
        return [np.where(x >= 0.0, np.ones_like(x), -np.ones_like(x)) * scale]
    if kind == "MultiThreshold":
        return [_multithreshold(args[0], args[1], op)]
    if kind == "Transpose":
        return [np.transpose(args[0], op.get("perm"))]
    if kind == "Reshape":
        return [_reshape(args[0], args[1])]
    if kind == "Flatten":
        axis = int(op.get("axis", 1))
        return [args[0].reshape(int(np.prod(args[0].shape[:axis])), -1)]
    if kind == "BatchNormalization":
        return [_batchnorm(*args[:5], float(op.get("epsilon", 1e-5)))]
    if kind == "Identity":
        return [args[0]]
    if kind == "Relu":
        return [np.maximum(args[0], np.zeros((), args[0].dtype))]
    if kind == "Neg":
        return [-args[0]]
    if kind == "Sign":
        return [np.sign(args[0])]
    if kind == "Squeeze":
        axes = tuple(int(a) for a in np.asarray(args[1]).reshape(-1)) if len(args) > 1 else None
        return [np.squeeze(args[0], axis=axes)]
    if kind == "Unsqueeze":
        out = args[0]
        for a in sorted(int(a) for a in np.asarray(args[1]).reshape(-1)):
            out = np.expand_dims(out, a)
        return [out]
    if kind in ("TopK", "ArgMax"):
        x = args[0]
        axis = int(op.get("axis", -1))
        k = int(np.asarray(args[1]).reshape(-1)[0]) if kind == "TopK" else 1
        order = np.argsort(-x, axis=axis, kind="stable")  # ties: the lower index first, as onnxruntime
        idx = np.take(order, np.arange(k), axis=axis)
        if kind == "ArgMax":
            return [idx if op.get("keepdims", 1) else np.squeeze(idx, axis=axis)]
        return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]
    raise HwgenError(f"op '{kind}' is not one the host program runs", where=f"host op {op.get('name', kind)}")


def run_program(program: dict, x: np.ndarray) -> np.ndarray:
    """The program's output for input `x` (float32)."""
    env: dict[str, np.ndarray] = {
        name: np.asarray(c["data"], dtype=np.dtype(c.get("dtype", "float32"))).reshape(c["shape"])
        for name, c in program["constants"].items()
    }
    env[program["input"]] = np.asarray(x, dtype=np.float32)
    if not program["ops"]:  # nothing to run: only the element type of the output to honour
        return env[program["input"]].astype(np.dtype(program.get("output_dtype", "float32")))
    for op in program["ops"]:
        outs = _run_op(op, [env[name] for name in op["inputs"] if name])
        for name, value in zip(op["outputs"], outs):
            env[name] = value
    return env[program["output"]]

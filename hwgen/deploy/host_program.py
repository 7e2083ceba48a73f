"""A host graph (`host_pre.onnx`, `host_post.onnx`) as a program the board driver runs with numpy
(`hwgen.driver.host_ops`), checked against QONNX execution of the graph itself.

The check runs both on inputs that reach every case the ops distinguish: for the pre program
(the model's float input) uniform values over [0, 1) and [-1, 1), values on a fine grid, and the
rounding ties of the input quantizer's scale; for the post program (the accelerator's integers)
every value of the output datatype when there are few, else random ones over its range. A
program that gives other bits than the graph on any of them is an error naming the graph: the
driver must compute what the simulation computes.
"""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.driver.host_ops import run_program
from hwgen.driver.wire import value_range
from hwgen.errors import HwgenError
from hwgen.execute import execute

#: inputs the check runs (per kind), and the most output values tried one by one
CHECK_SAMPLES = 4096


def host_program(model: ModelWrapper, where: str) -> dict:
    """The graph's nodes, in order, with their attributes and the constants they read."""
    graph = model.graph
    constants = {}
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        dtype = "int64" if np.issubdtype(value.dtype, np.integer) else "float32"
        constants[init.name] = {"shape": list(value.shape), "dtype": dtype,
                                "data": value.astype(dtype).reshape(-1).tolist()}
    ops = []
    for node in graph.node:
        op = {"op": node.op_type, "name": node.name, "inputs": list(node.input), "outputs": list(node.output)}
        for attr in node.attribute:
            value = helper.get_attribute_value(attr)
            op[attr.name] = value.decode() if isinstance(value, bytes) else (list(value) if isinstance(value, (list, tuple)) else value)
        ops.append(op)
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise HwgenError("a host graph has one input and one output", where=where)
    elem = graph.output[0].type.tensor_type.elem_type
    return {"input": graph.input[0].name, "output": graph.output[0].name, "constants": constants, "ops": ops,
            "output_dtype": np.dtype(helper.tensor_dtype_to_np_dtype(elem)).name}


def check_program(program: dict, model: ModelWrapper, samples: np.ndarray, where: str) -> None:
    """`run_program` equals QONNX execution of `model` bit for bit on `samples`."""
    expected = execute(model, samples.astype(np.float32))
    try:
        got = run_program(program, samples)
    except HwgenError as exc:
        raise HwgenError(f"the board driver cannot run it: {exc}", where=where) from None
    if got.dtype != expected.dtype:
        raise HwgenError(f"the driver's numpy program gives {got.dtype}, QONNX execution {expected.dtype}", where=where)
    if got.shape != expected.shape or not np.array_equal(got.astype(np.float32), expected.astype(np.float32)):
        bad = np.argwhere(got.astype(np.float32) != expected.astype(np.float32)) if got.shape == expected.shape else []
        at = f" first at index {list(bad[0])}" if len(bad) else f" (shape {got.shape} vs {expected.shape})"
        raise HwgenError(f"the driver's numpy program differs from QONNX execution{at}", where=where)


def pre_samples(shape: list[int], program: dict, dtype: str = "FLOAT32", seed: int = 0) -> np.ndarray:
    """Model inputs that reach the input quantizer's every case (see the module's note); values
    of the input's datatype where the model declares an integer one."""
    if dtype != "FLOAT32":
        return post_samples(shape, dtype, seed)
    rng = np.random.default_rng(seed)
    frame = int(np.prod(shape[1:]))
    n = max(1, CHECK_SAMPLES // max(1, frame) + 1)
    parts = [rng.random((n, frame)), rng.random((n, frame)) * 2 - 1,
             np.resize(np.linspace(-1.5, 1.5, 4097), (n, frame))]
    for c in program["constants"].values():  # ties of every scale-sized constant (k + 1/2) * s
        values = np.asarray(c["data"], np.float64)
        if values.size == 1 and 0 < abs(values[0]) < 1:
            parts.append(np.resize((np.arange(-300, 300) + 0.5) * abs(values[0]), (n, frame)))
    return np.concatenate(parts).reshape(-1, *shape[1:]).astype(np.float32)


def post_samples(shape: list[int], dtype: str, seed: int = 0) -> np.ndarray:
    """Values of the integer datatype `dtype` (the accelerator's outputs, or a model input that
    declares one): every value where few, else random over the range."""
    lo, hi = value_range(dtype)
    frame = int(np.prod(shape[1:]))
    rng = np.random.default_rng(seed)
    n = max(1, CHECK_SAMPLES // max(1, frame) + 1)
    values = rng.integers(lo, hi + 1, size=(n, frame))
    if dtype == "BIPOLAR":
        values = np.where(values >= 0, 1, -1)
    elif hi - lo + 1 <= CHECK_SAMPLES:
        values = np.concatenate([values, np.resize(np.arange(lo, hi + 1), (max(1, (hi - lo + 1) // frame + 1), frame))])
    return values.reshape(-1, *shape[1:]).astype(np.float32)

"""FoldAveragePoolIntoSumPool.

    q -> Mul(s) -> AveragePool(k x k, stride k)     =>     q -> SumPool(k x k) -> Mul(s) -> Div(k*k)
    q -> Mul(s) -> GlobalAveragePool                 =>     q -> SumPool(global) -> Mul(s) -> Div(H*W)
    q -> Mul(s) -> ReduceMean(axes 2, 3)             =>     the same (keepdims=0: then a Reshape to (N, C))

for an integer tensor q and a scalar scale s. The window sum of the integers is exact in hardware;
what remains is the scale and the 1/N, which join the chain to the next quantizer (thresholds or a
table), so the division costs nothing.

Exact where the model's own float arithmetic depends on the window sum alone: every product s*q
and every partial sum of a window is a float32 value exactly (true for a power-of-two scale), so
that the model's average is `finish(s * sum)` for one function `finish`. That is checked for every
value q and every sum, and `finish` is checked to be the Div (or the Mul by 1/N) written here, by
running the model's AveragePool on windows that hold each sum.

With any other scale (Brevitas' default 8-bit quantizer: a float scale calibrated on data) the
model rounds each product and partial sum, so its average lies within a rounding bound of
`finish(s * sum)` and depends on the order it adds the window's values in. The rewrite is the same;
the scale is recorded as inexact (`float_ties.note_inexact_scale`), so the thresholds the chain
becomes are recorded as ties where a window's sum lies within that bound of one, as for a dot
product with a float scale inside it: `verify` judges those outputs as the model's rounding.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from hwgen.errors import HwgenError
from hwgen.ops.integer import DOMAIN as INTEGER_DOMAIN
from hwgen.transforms.float_ties import note_inexact_scale
from hwgen.transforms.ingest.div_by_power_of_two_to_mul import exact_reciprocal
from hwgen.transforms.graph import add_const, add_shape, const, int_dtype_for_range, make_node, new_tensor, single_consumer


def _reduced_axes(model: ModelWrapper, node) -> list[int] | None:
    """The axes a ReduceMean averages over (attribute before opset 18, input from it)."""
    attr = get_by_name(node.attribute, "axes")
    if attr is not None:
        axes = list(attr.ints)
    elif len(node.input) > 1 and node.input[1]:
        value = const(model, node.input[1])
        axes = None if value is None else [int(a) for a in value.reshape(-1)]
    else:
        axes = None
    rank = len(model.get_tensor_shape(node.input[0]))
    return None if axes is None else sorted(a % rank for a in axes)


def _is_global(model: ModelWrapper, pool) -> bool:
    if pool.op_type == "GlobalAveragePool":
        return True
    return pool.op_type == "ReduceMean" and len(model.get_tensor_shape(pool.input[0])) == 4 \
        and _reduced_axes(model, pool) == [2, 3]


def _keepdims(pool) -> bool:
    attr = get_by_name(pool.attribute, "keepdims")
    return pool.op_type != "ReduceMean" or attr is None or bool(attr.i)


def _window(model: ModelWrapper, pool) -> tuple[int, int] | None:
    """(kh, kw) of a pool whose windows tile the image (stride = kernel, no padding), or None."""
    _, _, h, w = model.get_tensor_shape(pool.input[0])
    if _is_global(model, pool):
        return h, w
    kernel = list(get_by_name(pool.attribute, "kernel_shape").ints)
    strides = get_by_name(pool.attribute, "strides")
    strides = list(strides.ints) if strides is not None else [1, 1]
    pads = get_by_name(pool.attribute, "pads")
    ceil = get_by_name(pool.attribute, "ceil_mode")
    if strides != kernel or (pads is not None and any(pads.ints)) or (ceil is not None and ceil.i):
        return None
    return kernel[0], kernel[1]


def _exact_sums(scale: np.float32, lo: int, hi: int, n: int) -> bool:
    """Whether s*q and every sum of up to n of them are float32 values exactly, q in [lo, hi]."""
    totals = np.arange(n * min(lo, 0), n * max(hi, 0) + 1, dtype=np.float64) * np.float64(scale)
    return bool(np.all(totals.astype(np.float32).astype(np.float64) == totals))


def _model_average(model: ModelWrapper, pool, scale: np.float32, sums: np.ndarray,
                   window: tuple[int, int]) -> np.ndarray:
    """The model's own pooling node, run on windows holding s*S in one place and zeros elsewhere
    (the same exact float sum as any window of that total)."""
    kh, kw = window
    x = np.zeros((1, sums.size, kh, kw), np.float32)
    x[0, :, 0, 0] = (sums.astype(np.float64) * np.float64(scale)).astype(np.float32)
    node = helper.make_node(pool.op_type, ["x", *pool.input[1:]], ["y"])
    node.attribute.extend(pool.attribute)
    inits = [helper.make_tensor(t, TensorProto.INT64, const(model, t).shape, const(model, t).astype(np.int64).ravel())
             for t in pool.input[1:] if t]
    out_shape = [1, sums.size, 1, 1] if _keepdims(pool) else [1, sums.size]
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], initializer=inits)
    proto = helper.make_model(graph, opset_imports=list(model.model.opset_import))
    proto.ir_version = 8
    return execute_onnx(ModelWrapper(proto), {"x": x})["y"].reshape(-1)


class FoldAveragePoolIntoSumPool(Transformation):
    def apply(self, model: ModelWrapper):
        for pool in model.graph.node:
            if pool.op_type not in ("AveragePool", "GlobalAveragePool", "ReduceMean"):
                continue
            if pool.op_type == "ReduceMean" and not _is_global(model, pool):
                continue
            mul = model.find_producer(pool.input[0])
            if mul is None or mul.op_type != "Mul" or single_consumer(model, mul.output[0]) is None:
                continue
            scale = const(model, mul.input[1])
            q = mul.input[0]
            channels = model.get_tensor_shape(q)[1]
            if scale is None or scale.size not in (1, channels) or not model.get_tensor_datatype(q).is_integer():
                continue
            if scale.size > 1 and (scale.ndim != len(model.get_tensor_shape(q)) or scale.shape[1] != channels):
                continue  # a scale per channel is (1, C, 1, 1): a concat's merged scales
            window = _window(model, pool)
            if window is None:
                raise HwgenError("average pooling needs windows that tile the image (stride = kernel, no "
                                 "padding)", where=f"node {pool.name}")
            self._rewrite(model, pool, mul, q, scale.astype(np.float32), window)
            return model, True
        return model, False

    @staticmethod
    def _rewrite(model: ModelWrapper, pool, mul, q: str, scale: np.ndarray, window: tuple[int, int]) -> None:
        """`scale`: one, or one per channel (a concat's merged scales, (1, C, 1, 1)): the Mul after
        the sum keeps its shape, and the pool's finish is checked for each distinct scale."""
        dt = model.get_tensor_datatype(q)
        n = window[0] * window[1]
        lo, hi = n * int(dt.min()), n * int(dt.max())
        distinct = np.unique(scale.reshape(-1))
        exact = all(_exact_sums(s, int(dt.min()), int(dt.max()), n) for s in distinct)
        sums = np.arange(lo, hi + 1)
        finishes = set()
        for s in distinct:
            wanted = _model_average(model, pool, s, sums, window)
            scaled = (sums.astype(np.float64) * np.float64(s)).astype(np.float32)
            if np.array_equal(wanted, (scaled / np.float32(n)).astype(np.float32)):
                finishes.add(("Div", float(n)))
            elif np.array_equal(wanted, (scaled * np.float32(1.0 / n)).astype(np.float32)):
                finishes.add(("Mul", float(np.float32(1.0 / n))))
            elif exact:
                raise HwgenError("the model's average pooling rounds in a way hwgen cannot reproduce from the "
                                 "window sums", where=f"node {pool.name}")
        if len(finishes) > 1 and exact:
            raise HwgenError("the model's average pooling rounds differently from channel to channel",
                             where=f"node {pool.name}")
        # where the sums are not exact the model's rounding decides near the thresholds anyway: the
        # nearest form of its finish
        last = finishes.pop() if len(finishes) == 1 else ("Div", float(n))
        if last[0] == "Div" and exact_reciprocal(np.float32(n)) is not None:  # bit for bit the same, and a
            last = ("Mul", float(exact_reciprocal(np.float32(n))))             # Mul moves past a convolution
        if scale.size == 1:
            scale = np.float32(scale.reshape(-1)[0])
        elif not _keepdims(pool):
            scale = scale.reshape(1, -1)  # the sums flattened to (N, C)
        sum_dtype = int_dtype_for_range(lo, hi)
        n_, c = model.get_tensor_shape(q)[:2]
        pooled_shape = [n_, c, *(1, 1)] if _is_global(model, pool) else None
        summed = new_tensor(model, like=None if pooled_shape else pool.output[0], shape=pooled_shape, dtype=sum_dtype)
        nodes = [make_node("SumPool", [q], [summed], domain=INTEGER_DOMAIN, name=f"{pool.name}_sum",
                           kernel=[0, 0] if _is_global(model, pool) else list(window), out_dtype=sum_dtype.name)]
        if not _keepdims(pool):  # (N, C, 1, 1) -> (N, C), still integers
            flat = new_tensor(model, pool.output[0], dtype=sum_dtype)
            nodes.append(make_node("Reshape", [summed, add_shape(model, [n_, c])], [flat],
                                   name=f"{pool.name}_flatten"))
            summed = flat
        rescaled = new_tensor(model, pool.output[0])
        nodes += [
            make_node("Mul", [summed, add_const(model, scale)], [rescaled], name=f"{pool.name}_scale"),
            make_node(last[0], [rescaled, add_const(model, last[1])], [pool.output[0]], name=f"{pool.name}_mean"),
        ]
        index = list(model.graph.node).index(pool)
        for offset, node in enumerate(nodes):
            model.graph.node.insert(index + offset, node)
        model.graph.node.remove(pool)
        model.graph.node.remove(mul)
        if not exact:
            note_inexact_scale(model, f"{pool.name}_scale")

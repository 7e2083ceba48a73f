"""FoldElementwiseChainIntoThresholds.

    P -> E1 -> ... -> Ek -> Q          =>      P -> MultiThreshold(T)

where P produces an integer accumulator with a known range (an integer `MatMul`, an
`XnorPopcountMatMul`, or an integer graph input), E1..Ek are elementwise float ops with per-channel
constants (Mul, Add, Sub, Div, BatchNormalization, Relu, Neg: scales, biases, BatchNorm, the
`2p - MW` of XNOR layers) and Q is an activation quantizer (`Quant`, `BipolarQuant` or
`MultiThreshold`) whose output levels are integers.

The thresholds are not derived by algebra on floats. They are found by *running the original
ops* (through the same QONNX/onnxruntime execution as the model) on every possible accumulator
value, or by bisection when the range is large, so `MultiThreshold(T)` reproduces Q's output bit
for bit, including float rounding and ties (sign(0) = +1) at the threshold itself.

A channel whose chain is non-increasing (a negative BatchNorm scale) is made non-decreasing by
negating that output column of the weights (for XNOR layers: inverting its bits, p -> MW - p), so
hardware only ever compares `acc >= T`. Where P is an integer weighted sum (`ScaledAdd`: ABC-Net's
sum of its M x N convolutions, a BatchNorm after it), that channel's two coefficients are negated.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError
from hwgen.transforms.chain import ElementwiseChain, walk_back
from hwgen.transforms.float_ties import inexact_scales, note_float_ties
from hwgen.transforms.quant import dtype_for_levels, quant_levels
from hwgen.ops.integer import DOMAIN as INTEGER_DOMAIN
from hwgen.transforms.graph import QONNX_DOMAIN, add_const, const, int_dtype_for_range, make_node, single_consumer
from hwgen.units.add_streams import sum_range

QUANTIZERS = ("Quant", "BipolarQuant", "MultiThreshold", "Sign")
#: a table (ChannelwiseLookup) replaces thresholds for inputs of at most this many values, when
#: the function has at least LOOKUP_MIN_LEVELS levels or is not monotone
LOOKUP_MAX_ENTRIES = 1 << 10
LOOKUP_MIN_LEVELS = 16
#: float32 holds every integer up to this magnitude, and no further: the model's own arithmetic,
#: QONNX's thresholds (float32 initializers) and the chains run here are exact only within it
FLOAT32_EXACT = 1 << 24
#: Tabulate every accumulator value when the table has at most this many entries, else bisect.
FULL_TABLE_LIMIT = 1 << 22


def accumulator_range(model: ModelWrapper, tensor: str) -> tuple[np.ndarray, np.ndarray, object] | None:
    """Per-channel (lo, hi) of an integer tensor, and its producer where that is a layer whose
    output channels can be mirrored (else None); None if the tensor is not integer."""
    producer = model.find_producer(tensor)
    channels = model.get_tensor_shape(tensor)[1]
    if producer is None or producer.op_type not in ("XnorPopcountMatMul", "MatMul", "Conv"):
        dt = model.get_tensor_datatype(tensor)
        if not dt.is_integer():
            return None
        return np.full(channels, int(dt.min())), np.full(channels, int(dt.max())), None
    if producer.op_type == "XnorPopcountMatMul":
        mw = const(model, producer.input[1]).shape[0]
        return np.zeros(channels, np.int64), np.full(channels, mw, np.int64), producer
    if producer.op_type in ("MatMul", "Conv"):
        w = const(model, producer.input[1])
        xdt = model.get_tensor_datatype(producer.input[0])
        if w is None or not xdt.is_integer() or not np.all(w == np.round(w)):
            return None
        # one column per output channel; zero padding adds 0, which lies inside the range
        w = w.astype(np.int64)
        w = w if producer.op_type == "MatMul" else w.reshape(w.shape[0], -1).T
        a, b = w * int(xdt.min()), w * int(xdt.max())
        return np.minimum(a, b).sum(axis=0), np.maximum(a, b).sum(axis=0), producer
    return None


def annotate_ranges(model: ModelWrapper, tensors: tuple[str, ...], ranges: list) -> None:
    """Give each of `tensors` that is not annotated as integer (a layer's accumulator, joined as
    it is) the integer type of its range (`accumulator_range`'s (lo, hi, _))."""
    for tensor, (lo, hi, _) in zip(tensors, ranges):
        if not model.get_tensor_datatype(tensor).is_integer():
            model.set_tensor_datatype(tensor, int_dtype_for_range(int(lo.min()), int(hi.max())))


class _Chain(ElementwiseChain):
    """The elementwise ops and the quantizer that ends them, read as output levels."""

    def __init__(self, model: ModelWrapper, start: str, nodes: list, quant) -> None:
        super().__init__(model, start, nodes + [quant])
        self.quant = quant
        self.chain_nodes = nodes + [quant]

    def levels(self, acc: np.ndarray) -> np.ndarray:
        """Q's output on acc (shape (R, C)), as counts 0..L."""
        out = self.run(acc)
        a, b = self.out_scale_bias(self.model)
        return np.rint((out - b) / a).astype(np.int64)

    def out_scale_bias(self, model: ModelWrapper) -> tuple[float, float]:
        q = self.quant
        if q.op_type == "BipolarQuant":
            return 2.0, -1.0
        if q.op_type == "Sign":
            return 1.0, -1.0
        if q.op_type == "MultiThreshold":
            op = getCustomOp(q)
            return float(op.get_nodeattr("out_scale")), float(op.get_nodeattr("out_bias"))
        return 1.0, float(quant_levels(model, q)[0])

    def num_thresholds(self, model: ModelWrapper) -> int:
        q = self.quant
        if q.op_type == "BipolarQuant":
            return 1
        if q.op_type == "Sign":
            return 2
        if q.op_type == "MultiThreshold":
            return int(const(model, q.input[1]).shape[1])
        lo, hi = quant_levels(model, q)
        return hi - lo


def find_thresholds(chain: _Chain, lo: np.ndarray, hi: np.ndarray, mirror: int | None,
                    num: int) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds (C, num) on the accumulator, and which channels need mirroring acc -> mirror-acc.

    `mirror` is None when the producer cannot mirror its output (then a falling channel is an
    error)."""
    channels = lo.shape[0]
    span = int((hi - lo).max()) + 1
    if span * channels <= FULL_TABLE_LIMIT:
        grid = np.minimum(lo[None, :] + np.arange(span)[:, None], hi[None, :])
    else:
        steps = np.linspace(0, 1, 257)[:, None]
        grid = np.rint(lo[None, :] + steps * (hi - lo)[None, :]).astype(np.int64)
    table = chain.levels(grid)
    rising = np.all(np.diff(table, axis=0) >= 0, axis=0)
    falling = np.all(np.diff(table, axis=0) <= 0, axis=0) & ~rising
    bad = ~(rising | falling)
    if bad.any():
        raise HwgenError(
            f"the ops before it are not monotonic in the accumulator (channel {int(np.argmax(bad))}); "
            "cannot turn them into thresholds",
            where=f"node {chain.quant.name}",
        )
    if falling.any() and mirror is None:
        raise HwgenError("a falling activation (negative scale) on a layer input is not supported",
                         where=f"node {chain.quant.name}")
    m = 0 if mirror is None else mirror
    # oriented domain: a' = acc for rising channels, a' = m - acc for falling ones
    lo_o = np.where(falling, m - hi, lo)
    hi_o = np.where(falling, m - lo, hi)

    def counts(a_oriented: np.ndarray) -> np.ndarray:  # (R, C) oriented values -> counts
        acc = np.where(falling[None, :], m - a_oriented, a_oriented)
        return chain.levels(np.clip(acc, lo[None, :], hi[None, :]))

    # bisection for the smallest a' with count(a') >= j, j = 1..num, all channels at once
    low = np.repeat(lo_o[None, :], num, axis=0)
    high = np.repeat(hi_o[None, :] + 1, num, axis=0)
    need = np.arange(1, num + 1)[:, None]
    while np.any(low < high):
        mid = (low + high) // 2
        ok = counts(np.minimum(mid, hi_o[None, :])) >= need
        ok |= mid > hi_o[None, :]
        active = low < high
        high = np.where(active & ok, mid, high)
        low = np.where(active & ~ok, mid + 1, low)
    return low.T.astype(np.int64), falling


def _weighted_sum(model: ModelWrapper, tensor: str):
    """The `ScaledAdd` producing `tensor` where the chain being folded is its only reader (its
    channels can then be mirrored), else None."""
    producer = model.find_producer(tensor)
    if producer is None or producer.op_type != "ScaledAdd" or single_consumer(model, tensor) is None:
        return None
    return producer


def _mirror_weighted_sum(model: ModelWrapper, node, falling: np.ndarray) -> None:
    """Negate both coefficients of the `falling` channels of the `ScaledAdd` `node` (z -> -z
    there) and retype its output for the new range."""
    op = getCustomOp(node)
    alpha, beta = (np.broadcast_to(np.asarray(c, np.int64), falling.shape) for c in op.coefficients())
    sign = np.where(falling, -1, 1)
    alphas, betas = [int(a) for a in sign * alpha], [int(b) for b in sign * beta]
    for name, value in (("alpha", 1), ("beta", 1), ("alphas", alphas), ("betas", betas)):
        op.set_nodeattr(name, value)
    da, db = (model.get_tensor_datatype(t) for t in node.input)
    dtype = int_dtype_for_range(*sum_range(da, db, alphas, betas))
    op.set_nodeattr("out_dtype", dtype.name)
    model.set_tensor_datatype(node.output[0], dtype)


def check_exact_range(lo: int, hi: int, node) -> None:
    """Refuse integer ranges float32 cannot hold exactly (a 25-bit accumulator): thresholds or
    values there would be rounded, in the model as in its QONNX form, and hwgen exact to neither."""
    if max(-lo, hi) > FLOAT32_EXACT:
        raise HwgenError(f"the accumulator's range [{lo}, {hi}] exceeds +-2^24, beyond which float32 "
                         "(the model's arithmetic and QONNX's thresholds) is not exact: use fewer bits "
                         "or fewer inputs per output", where=f"node {node.name}")


def _lookup_instead(model: ModelWrapper, tensor: str, chain: _Chain, lo: np.ndarray, hi: np.ndarray,
                    producer) -> bool:
    """Replace the chain by a table (`Lookup`) where that is exact and cheaper than thresholds:
    inputs of few values and either many output levels or a function that is not monotone (a
    PReLU with a negative slope, a falling channel that no layer can mirror). True if done."""
    if producer is not None:
        model.set_tensor_datatype(tensor, int_dtype_for_range(lo.min(), hi.max()))
    in_dtype = model.get_tensor_datatype(tensor)
    entries = int(in_dtype.max()) - int(in_dtype.min()) + 1
    if entries > LOOKUP_MAX_ENTRIES:
        return False
    grid = np.arange(int(in_dtype.min()), int(in_dtype.max()) + 1)
    counts = chain.levels(np.clip(grid[:, None], lo[None, :], hi[None, :]))  # (entries, C)
    rising = np.all(np.diff(counts, axis=0) >= 0, axis=0)
    mirrorable = producer is not None and single_consumer(model, tensor) is not None
    falling = np.all(np.diff(counts, axis=0) <= 0, axis=0)
    monotone = np.all(rising | (falling & mirrorable))
    if monotone and chain.num_thresholds(model) < LOOKUP_MIN_LEVELS:
        return False
    a, b = chain.out_scale_bias(model)
    values = a * counts.T + b  # (C, entries)
    out_dtype = dtype_for_levels(values.ravel())
    if out_dtype is None:
        return False
    table = values[:1] if np.all(values == values[:1]) else values
    lookup = make_node("Lookup", [tensor, add_const(model, table.astype(np.float32))], [chain.quant.output[0]],
                       domain=INTEGER_DOMAIN, name=f"{chain.quant.name}_lookup", in_min=int(in_dtype.min()),
                       out_dtype=out_dtype.name)
    index = list(model.graph.node).index(chain.quant)
    model.graph.node.insert(index, lookup)
    note_ties(model, chain.chain_nodes, lookup.name)
    for node in chain.chain_nodes:
        model.graph.node.remove(node)
    model.set_tensor_datatype(chain.quant.output[0], out_dtype)
    return True


def note_ties(model: ModelWrapper, chain_nodes: list, threshold_name: str) -> None:
    """The new thresholds compare a sum the model rounded (a scale moved out of its dot product
    that is not a power of two): `verify` needs to know where ties can be the model's rounding."""
    scales = inexact_scales(model)
    if any(n.name in scales for n in chain_nodes):
        note_float_ties(model, threshold_name)


def drop_unreached_zero(thresholds: np.ndarray, a: float, b: float) -> tuple[np.ndarray, float, float]:
    """A three-level quantizer {-1, 0, +1} (a Sign) whose two thresholds coincide in every channel
    never outputs 0: no accumulator value lands on it. It is then a bipolar quantizer with one
    threshold, and the stream after it one bit wide (XNOR). Returns (thresholds, out_scale, out_bias)."""
    levels = [a * k + b for k in range(thresholds.shape[1] + 1)]
    if levels == [-1.0, 0.0, 1.0] and np.array_equal(thresholds[:, 0], thresholds[:, 1]):
        return thresholds[:, :1], 2.0, -1.0
    return thresholds, a, b


class FoldElementwiseChainIntoThresholds(Transformation):
    def apply(self, model: ModelWrapper):
        matches = []
        for q in model.graph.node:
            if q.op_type not in QUANTIZERS:
                continue
            tensor, chain = walk_back(model, q.input[0])
            if q.op_type == "MultiThreshold" and not chain:
                continue  # already integer thresholds on an integer input
            found = accumulator_range(model, tensor)
            if found is not None:
                matches.append((tensor, chain, q, found))
        for tensor, chain, q, (lo, hi, producer) in matches:
            self._rewrite(model, tensor, chain, q, lo, hi, producer)
        return model, bool(matches)

    @staticmethod
    def _rewrite(model, tensor, chain_nodes, q, lo, hi, producer) -> None:
        check_exact_range(int(lo.min()), int(hi.max()), producer or q)
        chain = _Chain(model, tensor, chain_nodes, q)
        if _lookup_instead(model, tensor, chain, lo, hi, producer):
            return
        mirror = None
        if producer is not None and single_consumer(model, tensor) is not None:
            mirror = const(model, producer.input[1]).shape[0] if producer.op_type == "XnorPopcountMatMul" else 0
        weighted_sum = _weighted_sum(model, tensor) if producer is None else None
        if weighted_sum is not None:
            mirror = 0
        thresholds, falling = find_thresholds(chain, lo, hi, mirror, chain.num_thresholds(model))
        if falling.any() and weighted_sum is not None:
            _mirror_weighted_sum(model, weighted_sum, falling)
        elif falling.any():
            w = const(model, producer.input[1]).copy()
            if producer.op_type == "XnorPopcountMatMul":
                w[:, falling] = 1 - w[:, falling]
                dtype = DataType["BINARY"]
            else:
                if producer.op_type == "Conv":
                    w[falling] = -w[falling]
                else:
                    w[:, falling] = -w[:, falling]
                dtype = model.get_tensor_datatype(producer.input[1])
                if not (w.min() >= dtype.min() and w.max() <= dtype.max()):
                    dtype = int_dtype_for_range(w.min(), w.max())
            producer.input[1] = add_const(model, w, dtype)
            lo, hi = np.where(falling, mirror - hi, lo), np.where(falling, mirror - lo, hi)
        thresholds, a, b = drop_unreached_zero(thresholds, *chain.out_scale_bias(model))
        num = thresholds.shape[1]
        out_dtype = dtype_for_levels([a * k + b for k in range(num + 1)])
        if producer is not None:  # a layer's accumulator: annotate its exact range
            model.set_tensor_datatype(tensor, int_dtype_for_range(lo.min(), hi.max()))
        layout = "NC" if chain.rank == 2 else "NCHW"
        mt = make_node("MultiThreshold", [tensor, add_const(model, thresholds.astype(np.float32))],
                       [q.output[0]], domain=QONNX_DOMAIN, name=f"{q.name}_thresholds",
                       out_dtype=out_dtype.name, out_scale=float(a), out_bias=float(b), data_layout=layout)
        index = list(model.graph.node).index(q)
        model.graph.node.insert(index, mt)
        note_ties(model, chain_nodes, mt.name)
        for node in chain_nodes + [q]:
            model.graph.node.remove(node)
        model.set_tensor_datatype(q.output[0], out_dtype)

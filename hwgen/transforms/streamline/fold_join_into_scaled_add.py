"""FoldJoinIntoScaledAdd.

    qa -> A1..Ak --\\
                   Add -> E1..En -> Q        =>    ScaledAdd(qa, qb; alpha, beta) -> MultiThreshold(T)
    qb -> B1..Bm --/                                                             or Lookup(table)

for integer tensors qa, qb of known ranges, elementwise ops A*, B*, E* with constant per-tensor or
per-channel parameters (the operands' scales, a BatchNorm after the sum, ...) and a quantizer Q:
a residual join and the requantization after it, as one exact integer sum and one integer
function of that sum.

Nothing is derived by algebra on floats. The model's own ops run on *every* pair (qa, qb) (8-bit x
8-bit: 65,536 pairs per channel), which gives Q's output F(qa, qb) per channel. Integer
coefficients (alpha, beta) are then searched so that F depends on z = alpha*qa + beta*qb alone:
where the operands' scales differ by a power of two that is the shift between them, else the
continued-fraction approximations of the scale ratio in order of size, each checked on all pairs.
F as a function of z becomes a table over z's range where that range is small (at most
`LOOKUP_MAX_ENTRIES` values) and F has many levels or is not monotone, else thresholds; where no
coefficients up to `MAX_COEFFICIENT` work, the join is an error naming the Add and both scales.

Where the operands' scales differ from channel to channel (the papers' code adds a binary
convolution's BatchNorm output, a per-channel affine of its accumulator, to the shortcut), each
channel gets its own pair: z[c] = alpha[c]*qa + beta[c]*qb, searched the same way on that channel's
levels, and the thresholds (or the table's rows) are found per channel on its own z:

    qa -> BatchNorm --\
                      Add -> Q    =>    ScaledAdd(qa, qb; alphas, betas) -> MultiThreshold(T[c])
    qb -> Mul(s) -----/
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError
from hwgen.ops.integer import DOMAIN as INTEGER_DOMAIN
from hwgen.transforms.chain import ElementwiseChain, walk_back, walk_forward
from hwgen.transforms.graph import QONNX_DOMAIN, add_const, int_dtype_for_range, make_node, new_tensor
from hwgen.transforms.quant import dtype_for_levels
from hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds import (
    FLOAT32_EXACT, LOOKUP_MAX_ENTRIES, LOOKUP_MIN_LEVELS, QUANTIZERS, _Chain, accumulator_range, annotate_ranges,
)

#: the largest integer coefficient tried for either operand
MAX_COEFFICIENT = 1 << 12
#: joins of more operand pairs than this (per channel) are not tabulated
MAX_PAIRS = 1 << 20


class _JoinChain(_Chain):
    """Both operand chains, the Add, the ops after it and the quantizer, runnable on (qa, qb)."""

    def __init__(self, model: ModelWrapper, starts: list[str], nodes: list, quant) -> None:
        ElementwiseChain.__init__(self, model, starts, nodes + [quant])
        self.quant = quant
        self.chain_nodes = nodes + [quant]

    def levels(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[override]
        out = self.run(a, b)
        scale, bias = self.out_scale_bias(self.model)
        return np.rint((out - bias) / scale).astype(np.int64)


def candidate_coefficients(ratio: float) -> list[tuple[int, int]]:
    """(alpha, beta) with alpha / beta ~ `ratio` (the scale of qa over that of qb): the exact pair
    when the ratio is a power of two or a small fraction, then every continued-fraction
    convergent and semiconvergent with both terms up to `MAX_COEFFICIENT`, smallest first."""
    sign = 1 if ratio > 0 else -1
    r = abs(ratio)
    found: list[tuple[int, int]] = []
    exact = Fraction(r).limit_denominator(MAX_COEFFICIENT)
    if float(exact) == r and exact.numerator <= MAX_COEFFICIENT:
        found.append((exact.numerator, exact.denominator))
    # continued fraction of r
    terms, x = [], r
    for _ in range(40):
        a = math.floor(x)
        terms.append(a)
        if x - a < 1e-15:
            break
        x = 1 / (x - a)
    p0, q0, p1, q1 = 1, 0, terms[0], 1
    candidates = [(max(p1, 1), q1)]
    for a in terms[1:]:
        for k in range(1, a + 1):  # semiconvergents, then the convergent (k == a)
            p, q = k * p1 + p0, k * q1 + q0
            if p > MAX_COEFFICIENT or q > MAX_COEFFICIENT:
                break
            candidates.append((p, q))
        p0, q0, p1, q1 = p1, q1, a * p1 + p0, a * q1 + q0
        if p1 > MAX_COEFFICIENT or q1 > MAX_COEFFICIENT:
            break
    for pair in sorted(set(candidates), key=lambda pq: max(pq)):
        if pair not in found and pair[0] >= 1:
            found.append(pair)
    return [(sign * a, b) for a, b in found]


def function_of(z: np.ndarray, levels: np.ndarray) -> tuple[bool, bool]:
    """Whether `levels` (R, C) is a function of `z` (R,) in every channel, and whether it is a
    non-decreasing one."""
    order = np.argsort(z, kind="stable")
    zs, ls = z[order], levels[order]
    same = zs[1:] == zs[:-1]
    steps = np.diff(ls, axis=0)
    if np.any(steps[same] != 0):
        return False, False
    return True, bool(np.all(steps >= 0))


def _per_tensor(model: ModelWrapper, nodes: list) -> bool:
    """Every parameter of `nodes` a single value: the ops do the same in every channel."""
    return all(model.get_initializer(name) is None or model.get_initializer(name).size == 1
               for node in nodes for name in node.input[1:] if name)


def _operand_scale(chain_output: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-channel slope of an operand's chain over its integer values (its scale)."""
    span = float(values[-1] - values[0]) or 1.0
    return (chain_output[-1] - chain_output[0]) / span


class FoldJoinIntoScaledAdd(Transformation):
    def apply(self, model: ModelWrapper):
        for add in model.graph.node:
            if add.op_type != "Add" or len(add.input) != 2:
                continue
            if any(model.get_initializer(t) is not None for t in add.input):
                continue
            match = self._match(model, add)
            if match is not None:
                self._rewrite(model, add, *match)
                return model, True
        return model, False

    @staticmethod
    def _match(model: ModelWrapper, add):
        (ta, chain_a), (tb, chain_b) = walk_back(model, add.input[0]), walk_back(model, add.input[1])
        ranges = [accumulator_range(model, t) for t in (ta, tb)]
        if any(r is None for r in ranges) or ta == tb:
            return None
        post, quant = walk_forward(model, add.output[0], QUANTIZERS)
        if quant is None:
            return None
        return ta, chain_a, tb, chain_b, ranges, post, quant

    @staticmethod
    def _rewrite(model, add, ta, chain_a, tb, chain_b, ranges, post, quant) -> None:
        (lo_a, hi_a, _), (lo_b, hi_b, _) = ranges
        va = np.arange(int(lo_a.min()), int(hi_a.max()) + 1)
        vb = np.arange(int(lo_b.min()), int(hi_b.max()) + 1)
        channels = lo_a.shape[0]
        if va.size * vb.size > MAX_PAIRS:
            raise HwgenError(f"the operands have {va.size} x {vb.size} value pairs, more than hwgen tabulates "
                             f"({MAX_PAIRS}): quantize them (8 bits each) before the add", where=f"node {add.name}")
        pairs_a, pairs_b = np.repeat(va, vb.size), np.tile(vb, va.size)
        annotate_ranges(model, (ta, tb), ranges)
        chain = _JoinChain(model, [ta, tb], chain_a + chain_b + [add] + post, quant)
        scale_a = _operand_scale(ElementwiseChain(model, ta, chain_a).run(va[:, None].repeat(channels, 1)), va)
        scale_b = _operand_scale(ElementwiseChain(model, tb, chain_b).run(vb[:, None].repeat(channels, 1)), vb)
        ratios = scale_a / scale_b
        if not np.all(np.isfinite(ratios)) or np.any(ratios == 0):
            c = int(np.flatnonzero(~np.isfinite(ratios) | (ratios == 0))[0])
            raise HwgenError(f"channel {c}: an operand has no scale there ({scale_a[c]:.9g} vs {scale_b[c]:.9g}): "
                             "it does not depend on its integer input", where=f"node {add.name}")
        if not np.allclose(ratios, ratios[0], rtol=1e-6):
            _per_channel(model, add, chain, ta, tb, pairs_a, pairs_b, ratios, scale_a, scale_b)
            return
        # Where both operands' chains are the same in every channel (per-tensor scales), the sum
        # the Add computes is one float per pair: if that is a function of z, so is everything
        # after it, which then runs on one pair per value of z rather than on every pair.
        summed = None
        if _per_tensor(model, chain_a + chain_b):
            summed = ElementwiseChain(model, [ta, tb], chain_a + chain_b + [add]).run(pairs_a[:, None], pairs_b[:, None])
        every_pair = None  # the quantizer's levels on every pair and channel, made when needed
        for alpha, beta in candidate_coefficients(float(ratios[0])):
            z = alpha * pairs_a + beta * pairs_b
            if max(-int(z.min()), int(z.max())) > FLOAT32_EXACT:
                continue  # the sum's thresholds would not be exact in float32
            if summed is not None and function_of(z, summed)[0]:
                zs, first = np.unique(z, return_index=True)
                z, levels = zs, chain.levels(pairs_a[first, None].repeat(channels, 1),
                                             pairs_b[first, None].repeat(channels, 1))
                is_function, rising = True, bool(np.all(np.diff(levels, axis=0) >= 0))
            else:
                if every_pair is None:
                    every_pair = chain.levels(pairs_a[:, None].repeat(channels, 1), pairs_b[:, None].repeat(channels, 1))
                levels = every_pair
                is_function, rising = function_of(z, levels)
            span = int(z.max() - z.min()) + 1
            table = span <= LOOKUP_MAX_ENTRIES and (not rising or chain.num_thresholds(model) >= LOOKUP_MIN_LEVELS)
            if is_function and (rising or table):
                _emit(model, add, chain, ta, tb, alpha, beta, z, levels, as_thresholds=not table)
                return
        raise HwgenError(f"no integer coefficients up to {MAX_COEFFICIENT} reproduce the model's rounding "
                         f"of a*{scale_a[0]:.9g} + b*{scale_b[0]:.9g} (scales of {ta} and {tb}) for every "
                         "input pair: use scales that are powers of two apart", where=f"node {add.name}")


def _per_channel(model: ModelWrapper, add, chain: _JoinChain, ta: str, tb: str, pairs_a: np.ndarray,
                 pairs_b: np.ndarray, ratios: np.ndarray, scale_a: np.ndarray, scale_b: np.ndarray) -> None:
    """The join with a coefficient pair per channel: each channel's smallest pair whose z its
    levels are a function of (a non-decreasing one preferred), then thresholds per channel, or a
    table where some channel's levels are not monotone in its z."""
    channels = ratios.size
    levels = chain.levels(pairs_a[:, None].repeat(channels, 1), pairs_b[:, None].repeat(channels, 1))
    alphas, betas, all_rising = [], [], True
    for c in range(channels):
        found = None
        for alpha, beta in candidate_coefficients(float(ratios[c])):
            z = alpha * pairs_a + beta * pairs_b
            if max(-int(z.min()), int(z.max())) > FLOAT32_EXACT:
                continue
            is_function, rising = function_of(z, levels[:, c:c + 1])
            if is_function and (found is None or rising):
                found = (alpha, beta, rising)
                if rising:
                    break
        if found is None:
            raise HwgenError(f"channel {c}: no integer coefficients up to {MAX_COEFFICIENT} reproduce the model's "
                             f"rounding of a*{scale_a[c]:.9g} + b*{scale_b[c]:.9g} (scales of {ta} and {tb}) for "
                             "every input pair: use scales that are powers of two apart", where=f"node {add.name}")
        alphas.append(found[0])
        betas.append(found[1])
        all_rising &= found[2]
    z = np.array(alphas)[None, :] * pairs_a[:, None] + np.array(betas)[None, :] * pairs_b[:, None]
    span = int(z.max() - z.min()) + 1
    table = span <= LOOKUP_MAX_ENTRIES and (not all_rising or chain.num_thresholds(model) >= LOOKUP_MIN_LEVELS)
    if not all_rising and not table:
        raise HwgenError(f"the join's output is not monotone in its per-channel sum, whose {span:,} values are "
                         f"more than a table holds ({LOOKUP_MAX_ENTRIES:,}): quantize the operands to fewer bits",
                         where=f"node {add.name}")
    _emit(model, add, chain, ta, tb, 1, 1, z, levels, as_thresholds=not table, per_channel=(alphas, betas))


def _sorted_by_z(z: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z and the levels sorted by z; per channel (each column its own order) for z of (R, C)."""
    order = np.argsort(z, axis=0, kind="stable")
    if z.ndim == 1:
        return z[order], levels[order]
    return np.take_along_axis(z, order, axis=0), np.take_along_axis(levels, order, axis=0)


def _emit(model: ModelWrapper, add, chain: _JoinChain, ta: str, tb: str, alpha: int, beta: int,
          z: np.ndarray, levels: np.ndarray, as_thresholds: bool,
          per_channel: tuple[list[int], list[int]] | None = None) -> None:
    """ScaledAdd -> MultiThreshold (monotone, few levels or a wide z) or Lookup (a table over z's
    range) in place of the join's nodes. `z` is (R,), or (R, C) with `per_channel` coefficients."""
    quant = chain.quant
    scale, bias = chain.out_scale_bias(model)
    z_dtype = int_dtype_for_range(int(z.min()), int(z.max()))
    z_tensor = new_tensor(model, add.output[0], dtype=z_dtype)
    coefficients = {"alpha": int(alpha), "beta": int(beta)}
    if per_channel is not None:
        coefficients.update(alphas=[int(a) for a in per_channel[0]], betas=[int(b) for b in per_channel[1]])
    nodes = [make_node("ScaledAdd", [ta, tb], [z_tensor], domain=INTEGER_DOMAIN, name=f"{add.name}_scaled",
                       out_dtype=z_dtype.name, **coefficients)]
    zs, ls = _sorted_by_z(z, levels)
    zs = zs if zs.ndim == 2 else np.broadcast_to(zs[:, None], ls.shape)
    if as_thresholds:
        steps = int(ls.max() - ls.min())
        low = int(ls.min(axis=0).min())
        # T[c, j] = the smallest z whose level reaches low + j + 1
        thresholds = np.empty((ls.shape[1], max(steps, 1)), np.int64)
        for j in range(thresholds.shape[1]):
            reached = ls >= low + j + 1
            at = np.argmax(reached, axis=0)
            first = np.where(reached.any(axis=0), zs[at, np.arange(ls.shape[1])], zs[-1] + 1)
            thresholds[:, j] = first
        out_values = [scale * (low + k) + bias for k in range(thresholds.shape[1] + 1)]
        out_dtype = dtype_for_levels(out_values)
        if np.all(thresholds == thresholds[:1]):
            thresholds = thresholds[:1]
        rank = len(model.get_tensor_shape(add.output[0]))
        nodes.append(make_node("MultiThreshold", [z_tensor, add_const(model, thresholds.astype(np.float32))],
                               [quant.output[0]], domain=QONNX_DOMAIN, name=f"{quant.name}_thresholds",
                               out_dtype=out_dtype.name, out_scale=float(scale), out_bias=float(scale * low + bias),
                               data_layout="NC" if rank == 2 else "NCHW"))
    else:
        entries = np.arange(int(z.min()), int(z.max()) + 1)
        table = np.empty((ls.shape[1], entries.size), np.float64)
        # every z the pairs reach takes its level; a z no pair reaches takes its neighbour's
        for c in range(ls.shape[1]):
            position = np.clip(np.searchsorted(zs[:, c], entries, side="right") - 1, 0, len(zs) - 1)
            table[c] = scale * ls[position, c] + bias
        out_dtype = dtype_for_levels(table.ravel())
        if np.all(table == table[:1]):
            table = table[:1]
        nodes.append(make_node("Lookup", [z_tensor, add_const(model, table.astype(np.float32))], [quant.output[0]],
                               domain=INTEGER_DOMAIN, name=f"{quant.name}_lookup", in_min=int(z.min()),
                               out_dtype=out_dtype.name))
    index = list(model.graph.node).index(quant)
    for offset, node in enumerate(nodes):
        model.graph.node.insert(index + offset, node)
    for node in chain.chain_nodes:
        model.graph.node.remove(node)
    model.set_tensor_datatype(quant.output[0], out_dtype)

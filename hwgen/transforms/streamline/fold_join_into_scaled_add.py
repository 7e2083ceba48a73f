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
from hwgen.transforms.graph import QONNX_DOMAIN, add_const, add_integer_thresholds, int_dtype_for_range, make_node, new_tensor
from hwgen.transforms.quant import dtype_for_levels
from hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds import (
    FLOAT32_EXACT, LOOKUP_MAX_ENTRIES, LOOKUP_MIN_LEVELS, QUANTIZERS, _Chain, accumulator_range, annotate_ranges,
    note_ties,
)
from hwgen.transforms.float_ties import EXTRA_ROUNDINGS, UNIT_ROUNDOFF, note_float_ties

#: the largest integer coefficient tried for either operand
MAX_COEFFICIENT = 1 << 12
#: ops whose chain is an affine function of its input in each channel (a join of wide operands
#: through only these is found by bisection rather than on every pair: `_wide_join`)
AFFINE_OPS = ("Mul", "Add", "Sub", "Div", "BatchNormalization")
#: the largest coefficient of a wide join (an 8-bit convolution's fine scale against a binary one's)
WIDE_MAX_COEFFICIENT = 1 << 20
#: a wide join's sums stay within float64's exact integers (its thresholds are float64 beyond 2^24)
FLOAT64_EXACT = 1 << 53
#: joins of more operand pairs than this (per channel) are not tabulated: a 3x3 binary convolution
#: over 64 channels (577 values) joined to a pooled 8-bit shortcut (1,021) fits
MAX_PAIRS = 1 << 21


class _JoinChain(_Chain):
    """Both operand chains, the Add, the ops after it and the quantizer, runnable on (qa, qb)."""

    def __init__(self, model: ModelWrapper, starts: list[str], nodes: list, quant) -> None:
        ElementwiseChain.__init__(self, model, starts, nodes + [quant])
        self.quant = quant
        self.chain_nodes = nodes + [quant]

    def levels(self, a: np.ndarray, b: np.ndarray, exact: bool = False) -> np.ndarray:  # type: ignore[override]
        out = self.run(a, b, exact=exact)
        scale, bias = self.out_scale_bias(self.model)
        return np.rint((out - bias) / scale).astype(np.int64)


def candidate_coefficients(ratio: float, limit: int = MAX_COEFFICIENT) -> list[tuple[int, int]]:
    """(alpha, beta) with alpha / beta ~ `ratio` (the scale of qa over that of qb): the exact pair
    when the ratio is a power of two or a small fraction, then every continued-fraction
    convergent and semiconvergent with both terms up to `limit`, smallest first."""
    sign = 1 if ratio > 0 else -1
    r = abs(ratio)
    found: list[tuple[int, int]] = []
    exact = Fraction(r).limit_denominator(limit)
    if float(exact) == r and exact.numerator <= limit:
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
            if p > limit or q > limit:
                break
            candidates.append((p, q))
        p0, q0, p1, q1 = p1, q1, a * p1 + p0, a * q1 + q0
        if p1 > limit or q1 > limit:
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
        affine = all(n.op_type in AFFINE_OPS for n in chain_a + chain_b + post)
        if va.size * vb.size > MAX_PAIRS and not affine:
            raise HwgenError(f"the operands have {va.size} x {vb.size} value pairs, more than hwgen tabulates "
                             f"({MAX_PAIRS}): quantize them (8 bits each) before the add", where=f"node {add.name}")
        annotate_ranges(model, (ta, tb), ranges)
        chain = _JoinChain(model, [ta, tb], chain_a + chain_b + [add] + post, quant)
        # an operand's scale is its chain's slope between the ends of its range
        scale_a = _operand_scale(ElementwiseChain(model, ta, chain_a).run(va[[0, -1], None].repeat(channels, 1)),
                                 va[[0, -1]])
        scale_b = _operand_scale(ElementwiseChain(model, tb, chain_b).run(vb[[0, -1], None].repeat(channels, 1)),
                                 vb[[0, -1]])
        if va.size * vb.size > MAX_PAIRS:
            _wide_join(model, add, chain, ta, tb, va, vb, scale_a / scale_b)
            return
        pairs_a, pairs_b = np.repeat(va, vb.size), np.tile(vb, va.size)
        ratios = scale_a / scale_b
        if not np.all(np.isfinite(ratios)) or np.any(ratios == 0):
            c = int(np.flatnonzero(~np.isfinite(ratios) | (ratios == 0))[0])
            raise HwgenError(f"channel {c}: an operand has no scale there ({scale_a[c]:.9g} vs {scale_b[c]:.9g}): "
                             "it does not depend on its integer input", where=f"node {add.name}")
        if not np.allclose(ratios, ratios[0], rtol=1e-6):
            refusal = _per_channel(model, add, chain, ta, tb, pairs_a, pairs_b, ratios, scale_a, scale_b)
            if refusal is None:
                return
            if not affine:
                raise refusal
            # real sums closer than coefficients up to MAX_COEFFICIENT resolve: the wide join's
            # larger coefficients, the pairs within float32 rounding of a boundary as ties
            _wide_join(model, add, chain, ta, tb, va, vb, ratios)
            return
        # Where both operands' chains are the same in every channel (per-tensor scales), the sum
        # the Add computes is one float per pair: if that is a function of z, so is everything
        # after it, which then runs on one pair per value of z rather than on every pair.
        per_tensor = _per_tensor(model, chain_a + chain_b)
        # The model's float32 levels first; where no coefficients order them (input pairs whose real
        # sums lie closer than float32 resolves), the real sums' levels, the model's rounding at
        # their thresholds recorded as float ties.
        for exact in (False, True):
            summed = None
            if per_tensor:
                summed = ElementwiseChain(model, [ta, tb], chain_a + chain_b + [add]).run(
                    pairs_a[:, None], pairs_b[:, None], exact=exact)
            every_pair = None  # the quantizer's levels on every pair and channel, made when needed
            for alpha, beta in candidate_coefficients(float(ratios[0])):
                z = alpha * pairs_a + beta * pairs_b
                if max(-int(z.min()), int(z.max())) > FLOAT32_EXACT:
                    continue  # the sum's thresholds would not be exact in float32
                if summed is not None and function_of(z, summed)[0]:
                    zs, first = np.unique(z, return_index=True)
                    z, levels = zs, chain.levels(pairs_a[first, None].repeat(channels, 1),
                                                 pairs_b[first, None].repeat(channels, 1), exact=exact)
                    is_function, rising = True, bool(np.all(np.diff(levels, axis=0) >= 0))
                else:
                    if every_pair is None:
                        every_pair = chain.levels(pairs_a[:, None].repeat(channels, 1),
                                                  pairs_b[:, None].repeat(channels, 1), exact=exact)
                    levels = every_pair
                    is_function, rising = function_of(z, levels)
                span = int(z.max() - z.min()) + 1
                table = span <= LOOKUP_MAX_ENTRIES and (not rising or chain.num_thresholds(model) >= LOOKUP_MIN_LEVELS)
                if is_function and (rising or table):
                    _emit(model, add, chain, ta, tb, alpha, beta, z, levels, as_thresholds=not table, rounded=exact)
                    return
        raise HwgenError(f"no integer coefficients up to {MAX_COEFFICIENT} reproduce the model's rounding "
                         f"of a*{scale_a[0]:.9g} + b*{scale_b[0]:.9g} (scales of {ta} and {tb}) for every "
                         "input pair: use scales that are powers of two apart", where=f"node {add.name}")


def _per_channel(model: ModelWrapper, add, chain: _JoinChain, ta: str, tb: str, pairs_a: np.ndarray,
                 pairs_b: np.ndarray, ratios: np.ndarray, scale_a: np.ndarray,
                 scale_b: np.ndarray) -> HwgenError | None:
    """The join with a coefficient pair per channel: each channel's smallest pair whose z its
    levels are a function of (a non-decreasing one preferred), then thresholds per channel, or a
    table where some channel's levels are not monotone in its z.

    A channel whose float32 levels no pair orders (two input pairs whose real sums lie closer
    than float32 resolves, rounded in the opposite order) takes the levels of the real sums
    (`exact`, float64): its thresholds are then the real ones, and the model's own float32
    rounding decides the outputs at them, recorded as float ties for `verify`.

    Returns None once the join is rewritten, else why it cannot be (the graph untouched): the
    caller raises that, or, for an affine join, takes `_wide_join`'s larger coefficients."""
    channels = ratios.size
    grid_a, grid_b = pairs_a[:, None].repeat(channels, 1), pairs_b[:, None].repeat(channels, 1)
    levels = chain.levels(grid_a, grid_b)
    exact_levels = None
    alphas, betas, all_rising, rounded = [], [], True, False
    for c in range(channels):
        found = _channel_coefficients(pairs_a, pairs_b, levels[:, c], float(ratios[c]))
        if found is None or not found[2]:
            if exact_levels is None:
                exact_levels = chain.levels(grid_a, grid_b, exact=True)
            real = _channel_coefficients(pairs_a, pairs_b, exact_levels[:, c], float(ratios[c]))
            if real is not None and (found is None or real[2]):
                found, rounded = real, True
                levels[:, c] = exact_levels[:, c]
        if found is None:
            return HwgenError(f"channel {c}: no integer coefficients up to {MAX_COEFFICIENT} reproduce the model's "
                              f"rounding of a*{scale_a[c]:.9g} + b*{scale_b[c]:.9g} (scales of {ta} and {tb}) for "
                              "every input pair: use scales that are powers of two apart", where=f"node {add.name}")
        alphas.append(found[0])
        betas.append(found[1])
        all_rising &= found[2]
    z = np.array(alphas)[None, :] * grid_a + np.array(betas)[None, :] * grid_b
    span = int(z.max() - z.min()) + 1
    table = span <= LOOKUP_MAX_ENTRIES and (not all_rising or chain.num_thresholds(model) >= LOOKUP_MIN_LEVELS)
    if not all_rising and not table:
        return HwgenError(f"the join's output is not monotone in its per-channel sum, whose {span:,} values are "
                          f"more than a table holds ({LOOKUP_MAX_ENTRIES:,}): quantize the operands to fewer bits",
                          where=f"node {add.name}")
    _emit(model, add, chain, ta, tb, 1, 1, z, levels, as_thresholds=not table, per_channel=(alphas, betas),
          rounded=rounded)
    return None


def _wide_join(model: ModelWrapper, add, chain: _JoinChain, ta: str, tb: str, va: np.ndarray, vb: np.ndarray,
               ratios: np.ndarray) -> None:
    """A join of operands too wide to tabulate (Bi-Real's downsampling: a binary convolution's
    accumulator and the 1x1 8-bit convolution of the pooled shortcut; a residual around ABC-Net's
    weighted sum) whose ops are affine in each channel, so that the quantizer's level is a
    monotone step function of the real sum v = s_a a + s_b b + k. For each value u of the narrower
    operand and each level L, bisection over the wider operand w finds the least w (in the
    direction the level rises) of level >= L. A pair (alpha, beta) per channel is right when, for
    every level, the largest z = alpha u + beta w below the level lies under the least z at or
    above it; that least z is the threshold.

    Levels are first the model's own (its float32 ops on the integers): where coefficients order
    them, the thresholds are the model's, bit for bit. A channel where none do takes the real
    sums' levels (float64), the model's float32 rounding deciding at its thresholds, recorded as
    float ties."""
    swap = va.size > vb.size  # u: the narrower operand, w: the wider
    u, w = (vb, va) if swap else (va, vb)
    channels = ratios.size
    ratios = 1.0 / ratios if swap else ratios  # the scale of u over that of w, per channel
    alphas, betas = [0] * channels, [0] * channels
    thresholds: np.ndarray | None = None
    rounded, pending = False, list(range(channels))
    for exact in (False, True):
        least, direction, low, lo_w, hi_w = _least_per_level(chain, add, u, w, swap, channels, exact)
        if thresholds is None:
            thresholds = np.empty((channels, least.shape[1]), np.int64)
        for c in list(pending):
            found = _wide_coefficients(u, least[:, :, c], int(lo_w[c]), int(hi_w[c]),
                                       float(ratios[c] * direction[c]), tolerant=exact)
            if found is None:
                continue
            alphas[c], beta, thresholds[c] = found
            betas[c] = beta * int(direction[c])  # back from w' to w
            pending.remove(c)
            rounded |= exact
    if pending:
        raise HwgenError(f"channel {pending[0]}: no integer coefficients up to {WIDE_MAX_COEFFICIENT} order the "
                         f"join's {u.size} x {w.size} input pairs by their real sum", where=f"node {add.name}")
    if swap:
        alphas, betas = betas, alphas
    corners = [np.array(alphas) * a + np.array(betas) * b for a in (va[0], va[-1]) for b in (vb[0], vb[-1])]
    z_range = (int(np.min(corners)), int(np.max(corners)))
    coefficients = {"alpha": 1, "beta": 1, "alphas": [int(a) for a in alphas], "betas": [int(b) for b in betas]}
    _install(model, add, chain, ta, tb, coefficients, z_range, rounded, thresholds=(thresholds, low))


def _least_per_level(chain: _JoinChain, add, u: np.ndarray, w: np.ndarray, swap: bool, channels: int,
                     exact: bool) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """For `_wide_join`: per u, level and channel the least w' = direction * w whose level reaches
    it (hi' + 1 where none does), by bisection; with the direction (C,) the level rises in w, the
    lowest level, and w's range [lo', hi'] per channel."""
    def levels(uu: np.ndarray, ww: np.ndarray) -> np.ndarray:
        return chain.levels(ww, uu, exact=exact) if swap else chain.levels(uu, ww, exact=exact)

    ends = levels(np.repeat(u, 2)[:, None].repeat(channels, 1), np.tile([w[0], w[-1]], u.size)[:, None].repeat(channels, 1))
    rise = np.sign(ends[1::2] - ends[0::2]).astype(np.int64)  # (|u|, C): how the level goes with w
    if np.any(np.any(rise > 0, axis=0) & np.any(rise < 0, axis=0)):
        raise HwgenError("the join's output rises with an operand for some values of the other and falls for "
                         "others: it is no monotone function of a weighted sum", where=f"node {add.name}")
    direction = np.where(np.any(rise != 0, axis=0), np.sign(rise.sum(axis=0)), 1)  # (C,)
    low, high = int(ends.min()), int(ends.max())
    targets = np.arange(low + 1, max(high, low + 1) + 1)
    lo_w = np.where(direction > 0, w[0], -w[-1])
    hi_w = np.where(direction > 0, w[-1], -w[0])
    rows_u = np.repeat(u, targets.size)[:, None].repeat(channels, 1)  # (|u| x levels, C)
    rows_t = np.tile(targets, u.size)[:, None]
    first = np.broadcast_to(lo_w, rows_u.shape).copy()
    last = np.broadcast_to(hi_w + 1, rows_u.shape).copy()
    while np.any(first < last):
        mid = (first + last) // 2
        reached = levels(rows_u, np.clip(mid, lo_w, hi_w) * direction) >= rows_t
        searching = first < last
        last = np.where(searching & reached, mid, last)
        first = np.where(searching & ~reached, mid + 1, first)
    return first.reshape(u.size, targets.size, channels), direction, low, lo_w, hi_w


def _wide_coefficients(u: np.ndarray, least: np.ndarray, lo: int, hi: int, ratio: float,
                       tolerant: bool) -> tuple[int, int, np.ndarray] | None:
    """(alpha, beta, thresholds) for one channel of `_wide_join`: `least` (|u|, levels) holds the
    least w' of each level for each u (hi + 1: never reached). Every pair ordered, or, `tolerant`
    (the real sums' levels), every pair but those within float32 rounding of a boundary:

    the pairs nearest a level's boundary lie closer to it than any small coefficients resolve
    (among 145 x 446,029 pairs some lie within 1e-9 of it), but where they lie within a few float32
    roundings (`EXTRA_ROUNDINGS`, inside the bound `verify` judges ties by) of the real sum's
    magnitude the model's own arithmetic cannot tell their side either: the smallest coefficients
    that order every pair but those are taken, and those pairs are the float ties `verify` names."""
    if not np.isfinite(ratio):
        return None
    reach_u, reach_w = int(np.abs(u).max()), max(abs(lo), abs(hi)) + 1
    for alpha, beta in candidate_coefficients(ratio, WIDE_MAX_COEFFICIENT) if ratio else [(0, 1)]:
        magnitude = abs(alpha) * reach_u + beta * reach_w
        if beta <= 0 or magnitude > FLOAT64_EXACT:
            continue
        at = alpha * u[:, None] + beta * least  # z of each level's first pair, per u
        below = at - beta  # z of the last pair under it
        reached = least <= hi
        t = np.where(reached, at, np.iinfo(np.int64).max).min(axis=0)
        t = np.where(reached.any(axis=0), t, (alpha * u + beta * hi).max() + 1)
        under = np.where(least > lo, below, np.iinfo(np.int64).min).max(axis=0)
        # how far the pairs under each level reach past its threshold (>= 1: some pair under the
        # level would compare at or above it): none, or within the float32 rounding (in z)
        overlap = under - t + 1
        if np.all(overlap <= (EXTRA_ROUNDINGS * magnitude * UNIT_ROUNDOFF if tolerant else 0)):
            return alpha, beta, t
    return None


def _channel_coefficients(pairs_a: np.ndarray, pairs_b: np.ndarray, levels: np.ndarray,
                          ratio: float) -> tuple[int, int, bool] | None:
    """(alpha, beta, rising): the smallest coefficients whose z = alpha*a + beta*b one channel's
    `levels` (R,) are a non-decreasing function of, else the smallest they are any function of;
    None where there are none."""
    reach_a, reach_b = int(np.abs(pairs_a).max()), int(np.abs(pairs_b).max())
    candidates = [(alpha, beta) for alpha, beta in candidate_coefficients(ratio)
                  if abs(alpha) * reach_a + abs(beta) * reach_b <= FLOAT32_EXACT]  # thresholds exact in float32
    # Rising: every level's largest z below the next level's smallest, found per level group in
    # one pass (no sort per candidate).
    order = np.argsort(levels, kind="stable")
    a, b, ls = pairs_a[order], pairs_b[order], levels[order]
    starts = np.flatnonzero(np.r_[True, ls[1:] != ls[:-1]])
    for alpha, beta in candidates:
        z = alpha * a + beta * b
        if np.all(np.maximum.reduceat(z, starts)[:-1] < np.minimum.reduceat(z, starts)[1:]):
            return alpha, beta, True
    for alpha, beta in candidates:
        if function_of(alpha * pairs_a + beta * pairs_b, levels[:, None])[0]:
            return alpha, beta, False
    return None


def _sorted_by_z(z: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z and the levels sorted by z; per channel (each column its own order) for z of (R, C)."""
    order = np.argsort(z, axis=0, kind="stable")
    if z.ndim == 1:
        return z[order], levels[order]
    return np.take_along_axis(z, order, axis=0), np.take_along_axis(levels, order, axis=0)


def _emit(model: ModelWrapper, add, chain: _JoinChain, ta: str, tb: str, alpha: int, beta: int,
          z: np.ndarray, levels: np.ndarray, as_thresholds: bool,
          per_channel: tuple[list[int], list[int]] | None = None, rounded: bool = False) -> None:
    """ScaledAdd -> MultiThreshold (monotone, few levels or a wide z) or Lookup (a table over z's
    range) in place of the join's nodes. `z` is (R,), or (R, C) with `per_channel` coefficients.
    The thresholds are float ties where `levels` are the real sums' (`rounded`: the model's
    float32 rounding orders some pairs otherwise) or an operand's scale left a dot product
    inexactly."""
    coefficients = {"alpha": int(alpha), "beta": int(beta)}
    if per_channel is not None:
        coefficients.update(alphas=[int(a) for a in per_channel[0]], betas=[int(b) for b in per_channel[1]])
    zs, ls = _sorted_by_z(z, levels)
    zs = zs if zs.ndim == 2 else np.broadcast_to(zs[:, None], ls.shape)
    z_range = (int(z.min()), int(z.max()))
    if as_thresholds:
        low = int(ls.min(axis=0).min())
        # T[c, j] = the smallest z whose level reaches low + j + 1 (levels rise with z in each channel)
        targets = low + 1 + np.arange(max(int(ls.max()) - low, 1))
        thresholds = np.empty((ls.shape[1], targets.size), np.int64)
        for c in range(ls.shape[1]):
            at = np.searchsorted(ls[:, c], targets, side="left")
            thresholds[c] = np.where(at < len(ls), zs[np.minimum(at, len(ls) - 1), c], zs[-1, c] + 1)
        _install(model, add, chain, ta, tb, coefficients, z_range, rounded, thresholds=(thresholds, low))
        return
    scale, bias = chain.out_scale_bias(model)
    entries = np.arange(z_range[0], z_range[1] + 1)
    table = np.empty((ls.shape[1], entries.size), np.float64)
    # every z the pairs reach takes its level; a z no pair reaches takes its neighbour's
    for c in range(ls.shape[1]):
        position = np.clip(np.searchsorted(zs[:, c], entries, side="right") - 1, 0, len(zs) - 1)
        table[c] = scale * ls[position, c] + bias
    _install(model, add, chain, ta, tb, coefficients, z_range, rounded, table=table)


def _install(model: ModelWrapper, add, chain: _JoinChain, ta: str, tb: str, coefficients: dict,
             z_range: tuple[int, int], rounded: bool, thresholds: tuple[np.ndarray, int] | None = None,
             table: np.ndarray | None = None) -> None:
    """The join's nodes replaced by ScaledAdd(ta, tb; `coefficients`) and either MultiThreshold
    (`thresholds`: T (C, K), T[c, j] the least z of level low + j + 1, and low) or Lookup
    (`table` (C, entries) of output values from z_range[0] on)."""
    quant = chain.quant
    z_dtype = int_dtype_for_range(*z_range)
    z_tensor = new_tensor(model, add.output[0], dtype=z_dtype)
    nodes = [make_node("ScaledAdd", [ta, tb], [z_tensor], domain=INTEGER_DOMAIN, name=f"{add.name}_scaled",
                       out_dtype=z_dtype.name, **coefficients)]
    scale, bias = chain.out_scale_bias(model)
    if thresholds is not None:
        t, low = thresholds
        out_dtype = dtype_for_levels([scale * (low + k) + bias for k in range(t.shape[1] + 1)])
        t = t[:1] if np.all(t == t[:1]) else t
        rank = len(model.get_tensor_shape(add.output[0]))
        nodes.append(make_node("MultiThreshold", [z_tensor, add_integer_thresholds(model, t)],
                               [quant.output[0]], domain=QONNX_DOMAIN, name=f"{quant.name}_thresholds",
                               out_dtype=out_dtype.name, out_scale=float(scale), out_bias=float(scale * low + bias),
                               data_layout="NC" if rank == 2 else "NCHW"))
    else:
        out_dtype = dtype_for_levels(table.ravel())
        table = table[:1] if np.all(table == table[:1]) else table
        nodes.append(make_node("Lookup", [z_tensor, add_const(model, table.astype(np.float32))], [quant.output[0]],
                               domain=INTEGER_DOMAIN, name=f"{quant.name}_lookup", in_min=z_range[0],
                               out_dtype=out_dtype.name))
    if rounded:
        note_float_ties(model, nodes[-1].name)
    else:
        note_ties(model, chain.chain_nodes, nodes[-1].name)
    index = list(model.graph.node).index(quant)
    for offset, node in enumerate(nodes):
        model.graph.node.insert(index + offset, node)
    for node in chain.chain_nodes:
        model.graph.node.remove(node)
    model.set_tensor_datatype(quant.output[0], out_dtype)

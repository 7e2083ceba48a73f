"""FoldScaledSum: a sum of scaled integer tensors as one exact integer sum.

    qa -> Mul(a1) .. Mul(ak) --\\
                                Add     =>     ScaledAdd(qa, qb; alpha, beta) -> Mul(c)
    qb -> Mul(b1) .. Mul(bm) --/

for integer tensors qa, qb whose chains to the Add are scalar multiplies only, their total scales
sa = a1...ak and sb = b1...bm in an exact ratio of small integers alpha / beta, and c = sa / alpha
= sb / beta. This is ABC-Net as its paper writes a layer: sum over m, n of alpha_m beta_n
conv(B_m, A_n), one binary convolution per weight base and activation base, each scaled by a
binary fraction, added one by one. Repeated, a tree of such Adds becomes a tree of ScaledAdds
(`AddStreams` in hardware: the M x N XNOR-popcount MVUs with an integer weighted sum), and the
last Mul(c) joins the chain to the next quantizer (thresholds on the integer sum).

Taken where an operand is a layer's accumulator or such a sum; a residual join of quantized
tensors is `FoldJoinIntoScaledAdd`'s, which folds the quantizer after it too.

Exact where the model's float products and sums are: every scale a power of two and the sum's
range within float32's 24-bit mantissa. Otherwise (a binary weight scale of 0.1 inside each term)
the model rounds each term and each partial sum, and c is recorded as an inexact scale
(`float_ties`): the thresholds after it are ties where the sum lies within that rounding of one.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.ops.integer import DOMAIN as INTEGER_DOMAIN
from hwgen.transforms.chain import walk_back
from hwgen.transforms.float_ties import is_power_of_two, note_inexact_scale
from hwgen.transforms.graph import add_const, const, int_dtype_for_range, make_node, new_tensor
from hwgen.transforms.streamline.fold_elementwise_chain_into_thresholds import (
    FLOAT32_EXACT, accumulator_range, annotate_ranges,
)

#: the largest integer coefficient of either operand
MAX_COEFFICIENT = 1 << 12
#: what an operand's integer tensor must come from: a layer's accumulator, or such a sum
SOURCES = ("Conv", "MatMul", "XnorPopcountMatMul", "ScaledAdd")


def _scale_of(model: ModelWrapper, chain: list) -> list[float] | None:
    """The scalar factors of a chain of Muls by constants, or None for any other chain."""
    factors = []
    for node in chain:
        value = const(model, node.input[1]) if node.op_type == "Mul" and len(node.input) == 2 else None
        if value is None or value.size != 1:
            return None
        factors.append(float(np.float32(value.reshape(-1)[0])))
    return factors


def exact_ratio(sa: float, sb: float) -> tuple[int, int] | None:
    """(alpha, beta), small positive-denominator integers with alpha / beta == sa / sb exactly."""
    ratio = Fraction(sa) / Fraction(sb)
    if ratio.numerator == 0 or abs(ratio.numerator) > MAX_COEFFICIENT or ratio.denominator > MAX_COEFFICIENT:
        return None
    return ratio.numerator, ratio.denominator


class FoldScaledSum(Transformation):
    def apply(self, model: ModelWrapper):
        """Every such Add, the whole tree in one call: each fold makes the next Add's operand an
        integer sum, and the join rule must not take the tree's last Add first."""
        changed = False
        while any(self._fold(model, add) for add in list(model.graph.node)
                  if add.op_type == "Add" and len(add.input) == 2
                  and all(const(model, t) is None for t in add.input)):
            changed = True
        return model, changed

    @staticmethod
    def _fold(model: ModelWrapper, add) -> bool:
        (ta, chain_a), (tb, chain_b) = walk_back(model, add.input[0]), walk_back(model, add.input[1])
        if ta == tb:
            return False
        sources = [model.find_producer(t) for t in (ta, tb)]
        if not any(p is not None and p.op_type in SOURCES for p in sources):
            return False
        factors = [_scale_of(model, chain) for chain in (chain_a, chain_b)]
        ranges = [accumulator_range(model, t) for t in (ta, tb)]
        if any(f is None for f in factors) or any(r is None for r in ranges):
            return False
        sa, sb = (float(np.prod(f, dtype=np.float64)) for f in factors)
        pair = exact_ratio(sa, sb) if sa and sb else None
        if pair is None:
            return False
        alpha, beta = pair
        c = sa / alpha
        (lo_a, hi_a, _), (lo_b, hi_b, _) = ranges
        ends = [alpha * int(lo_a.min()), alpha * int(hi_a.max())]
        other = [beta * int(lo_b.min()), beta * int(hi_b.max())]
        lo, hi = min(ends) + min(other), max(ends) + max(other)
        annotate_ranges(model, (ta, tb), ranges)
        z_dtype = int_dtype_for_range(lo, hi)
        z = new_tensor(model, add.output[0], dtype=z_dtype)
        scale_name = f"{add.name}_scale"
        nodes = [make_node("ScaledAdd", [ta, tb], [z], domain=INTEGER_DOMAIN, name=f"{add.name}_scaled",
                           alpha=int(alpha), beta=int(beta), out_dtype=z_dtype.name),
                 make_node("Mul", [z, add_const(model, np.float32(c))], [add.output[0]], name=scale_name)]
        index = list(model.graph.node).index(add)
        for offset, node in enumerate(nodes):
            model.graph.node.insert(index + offset, node)
        for node in chain_a + chain_b + [add]:
            model.graph.node.remove(node)
        exact = (all(is_power_of_two(np.array(f)) for f in factors[0] + factors[1])
                 and np.float32(c) == c and max(-lo, hi) <= FLOAT32_EXACT)
        if not exact:
            note_inexact_scale(model, scale_name)
        return True

"""LabelSelect: the indices of the `k` largest of `labels` values (the classifier's top-k).

The values arrive `PE` per beat; the `k` indices leave one per beat, largest value first, equal
values in ascending index order (ONNX TopK order). The output datatype is the smallest unsigned type
holding `labels - 1` (`label_dtype`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Const, Module, Signal, Value
from amaranth.lib import wiring
from qonnx.core.datatype import BaseDataType

from hwgen.errors import HwgenError
from hwgen.units.base import StreamSpec, Unit, stream_ports
from hwgen.units.datapath import check_dtype, check_positive, check_values, decode, smallest_int_dtype, tree_sum, wrap_inc


def label_dtype(labels: int) -> BaseDataType:
    """UINTn (BINARY for n = 1) with n the bits of `labels - 1`."""
    return smallest_int_dtype(0, max(labels - 1, 1))


def topk_reference(values: np.ndarray, k: int) -> np.ndarray:
    """Indices (N, k) of the k largest of values (N, labels), ties to the lower index."""
    v = np.asarray(values, dtype=np.int64)
    return np.argsort(-v, axis=-1, kind="stable")[..., :k]


@dataclass(frozen=True)
class LabelSelect(Unit):
    """Top-k over `labels` values of `input_dtype`, `PE` values per input beat."""

    FOLDING = (("PE", "labels"),)

    labels: int
    PE: int
    k: int
    input_dtype: BaseDataType

    def __post_init__(self) -> None:
        where = "LabelSelect"
        check_positive(self, ("labels", "PE", "k"), where)
        if self.labels % self.PE:
            raise HwgenError(f"PE={self.PE} does not divide labels={self.labels}", where=where)
        if self.k > self.labels:
            raise HwgenError(f"k={self.k} exceeds labels={self.labels}", where=where)
        check_dtype(self.input_dtype, "input_dtype", where)

    @property
    def output_dtype(self) -> BaseDataType:
        return label_dtype(self.labels)

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.input_dtype, self.PE, self.labels // self.PE),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.output_dtype, 1, self.k),)

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        (x,) = frames
        return topk_reference(check_values(x, self.input_dtype, "LabelSelect input"), self.k)

    def component(self) -> wiring.Component:
        return LabelSelectComponent(self)

    def held_fraction(self) -> float:
        """Every label before the first index can leave."""
        return 1.0

    def least_held_fraction(self) -> float:
        """Every label."""
        return 1.0

    def est_cycles(self) -> int:
        """Input and output overlap (the result is double-buffered): max(labels/PE, k)."""
        return max(self.labels // self.PE, self.k)

    def est_luts(self) -> int:
        """Rank sort of k kept + PE new candidates: one (vbits+1)-bit comparator per pair, a
        rank adder per candidate, a (k+PE)-way select of value and index per kept slot, plus the
        k-deep output shift register."""
        n = self.k + self.PE
        vbits = self.input_dtype.bitwidth()
        ibits = self.output_dtype.bitwidth()
        pairs = n * (n - 1) // 2
        return pairs * (vbits + 1) + n * n.bit_length() + self.k * n * (vbits + ibits + 1) + self.k * ibits + 16

    def est_brams(self) -> int:
        return 0


class LabelSelectComponent(wiring.Component):
    """Each accepted beat merges its PE values into a sorted list of the k best so far: every
    candidate (k kept + PE new) gets its rank = how many others beat it, and kept slot j takes the
    candidate of rank j. "a beats b" orders valid before empty, then larger value, then the lower
    index; the kept list is sorted and its indices precede the new ones, so only value comparisons
    between kept/new and new/new pairs are needed. On the frame's last beat the k indices move into
    an output shift register that drains one per beat while the next frame arrives; that last beat
    waits (inp.ready low) until the shift register is empty or is giving its final index, so
    out.ready reaches inp.ready combinationally.
    """

    def __init__(self, unit: LabelSelect) -> None:
        self.unit = unit
        super().__init__(stream_ports(unit.inputs[0].width, unit.outputs[0].width))

    def elaborate(self, platform: object) -> Module:
        u = self.unit
        m = Module()
        K, PE = u.k, u.PE
        folds = u.labels // PE
        vbits = u.input_dtype.bitwidth()
        ibits = u.output_dtype.bitwidth()

        fold = Signal(range(folds))
        base = Signal(range(u.labels))  # index of lane 0 of the current beat
        first, last = fold == 0, fold == folds - 1

        kept_val = [Signal(vbits, name=f"kept_val{j}") for j in range(K)]
        kept_idx = [Signal(ibits, name=f"kept_idx{j}") for j in range(K)]
        kept_ok = [Signal(name=f"kept_ok{j}") for j in range(K)]

        # candidates: (value, index, valid), kept ones first (in list order), then the lanes
        cands: list[tuple[Value, Value, Value]] = []
        for j in range(K):
            cands.append((decode(kept_val[j], u.input_dtype), kept_idx[j], kept_ok[j] & ~first))
        for pe in range(PE):
            code = self.inp.payload[pe * vbits : (pe + 1) * vbits]
            cands.append((decode(code, u.input_dtype), (base + pe)[:ibits], Const(1, 1)))
        raw = [kept_val[j] for j in range(K)] + [
            self.inp.payload[pe * vbits : (pe + 1) * vbits] for pe in range(PE)
        ]

        def beats(a: int, b: int) -> Value:
            """Candidate a (a < b in index order) beats candidate b."""
            if a < K and b < K:
                return Const(1, 1)  # the kept list is sorted, empty slots last
            (va, _, oka), (vb, _, okb) = cands[a], cands[b]
            return (oka & (~okb | (va >= vb))) | (~oka & ~okb)

        n = len(cands)
        wins = {}
        for a in range(n):
            for b in range(a + 1, n):
                w = Signal(name=f"beats_{a}_{b}")
                m.d.comb += w.eq(beats(a, b))
                wins[a, b] = w
        ranks = []
        for c in range(n):
            rank = Signal(range(n), name=f"rank{c}")
            m.d.comb += rank.eq(tree_sum([wins[a, c] for a in range(c)] + [~wins[c, b] for b in range(c + 1, n)]))
            ranks.append(rank)

        new_val = [Signal(vbits, name=f"new_val{j}") for j in range(K)]
        new_idx = [Signal(ibits, name=f"new_idx{j}") for j in range(K)]
        new_ok = [Signal(name=f"new_ok{j}") for j in range(K)]
        for j in range(K):
            for c in range(n):
                with m.If(ranks[c] == j):
                    m.d.comb += [new_val[j].eq(raw[c]), new_idx[j].eq(cands[c][1]), new_ok[j].eq(cands[c][2])]

        # output shift register
        obuf = [Signal(ibits, name=f"obuf{j}") for j in range(K)]
        left = Signal(range(K + 1))
        out_fire = self.out.valid & self.out.ready
        obuf_free = (left == 0) | ((left == 1) & self.out.ready)
        m.d.comb += [
            self.out.valid.eq(left != 0),
            self.out.payload.eq(obuf[0]),
            self.inp.ready.eq(~last | obuf_free),
        ]
        with m.If(out_fire):
            m.d.sync += [obuf[j].eq(obuf[j + 1]) for j in range(K - 1)]
            m.d.sync += left.eq(left - 1)

        with m.If(self.inp.valid & self.inp.ready):
            m.d.sync += [fold.eq(wrap_inc(fold, folds)), base.eq(0 if folds == 1 else (base + PE))]
            for j in range(K):
                m.d.sync += [kept_val[j].eq(new_val[j]), kept_idx[j].eq(new_idx[j]), kept_ok[j].eq(new_ok[j])]
            with m.If(last):
                m.d.sync += [base.eq(0), left.eq(K)]
                m.d.sync += [obuf[j].eq(new_idx[j]) for j in range(K)]
        return m

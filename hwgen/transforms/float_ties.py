"""Dot products the model rounds and the accelerator sums exactly: where their results can differ.

Streamlining takes a scale out of a dot product: `MatMul(x * s, W)` becomes `MatMul(x, W) * s`
(`MoveScalarMulPastMatMul`) and `MatMul(x, Wint * ws)` becomes `MatMul(x, Wint) * ws`
(`FoldWeightQuantIntoMatMul`). Thresholds are then found by running the model's own float ops on
each exact integer sum. With a power-of-two scale that is the model's arithmetic bit for bit. With
any other scale (1/255 for pixels, a learned weight scale) the model rounds every product and
partial sum in float32, so its value lies within a rounding bound of the exact one, and where a
threshold falls inside that bound (a *tie*) the model's output depends on the order its MatMul
adds terms in - its BLAS, not the sum. No integer layer can follow it there (a test shows frames
with equal sums and different model outputs); everywhere else the accelerator is exact.

The build records which threshold nodes sit behind such a dot product (metadata of the graph), and
`verify` uses `tie_frames` to tell a frame the model's rounding decides from a wrong bit.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp

from hwgen.reach import propagate
from hwgen.transforms.graph import const

#: Mul nodes holding a scale that left a dot product inexactly (JSON list of node names)
INEXACT_SCALES = "hwgen_inexact_scales"
#: thresholds (MultiThreshold / Lookup nodes) on such a dot product's sum (JSON list of node names)
FLOAT_TIES = "hwgen_float_ties"
#: float32's unit roundoff
UNIT_ROUNDOFF = 2.0 ** -24
#: roundings besides the sum's own: the scaled input, the scaled weight, their product, and the
#: scales the thresholds were found through
EXTRA_ROUNDINGS = 5


def is_power_of_two(values: np.ndarray) -> bool:
    """Every value is +-2^k (or 0): multiplying by it is exact in float32 within its range."""
    v = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    mantissa, _ = np.frexp(v)
    return bool(np.all((v == 0) | (mantissa == 0.5)))


def _names(model: ModelWrapper, key: str) -> list[str]:
    value = model.get_metadata_prop(key)
    return json.loads(value) if value else []


def _add_name(model: ModelWrapper, key: str, name: str) -> None:
    names = _names(model, key)
    if name not in names:
        model.set_metadata_prop(key, json.dumps(names + [name]))


def note_inexact_scale(model: ModelWrapper, mul_name: str) -> None:
    """Record that Mul `mul_name` carries a scale the model applied inside a float dot product."""
    _add_name(model, INEXACT_SCALES, mul_name)


def inexact_scales(model: ModelWrapper) -> frozenset[str]:
    """The Mul nodes recorded by `note_inexact_scale` (the metadata parsed once per call: ask
    once, then test names against the set)."""
    return frozenset(_names(model, INEXACT_SCALES))


def note_float_ties(model: ModelWrapper, threshold_name: str) -> None:
    """Record that the thresholds `threshold_name` compare a sum the model rounds in float32."""
    _add_name(model, FLOAT_TIES, threshold_name)


def float_tie_nodes(model: ModelWrapper) -> list[str]:
    return _names(model, FLOAT_TIES)


def _magnitude(model: ModelWrapper, producer, x: np.ndarray) -> tuple[np.ndarray, int]:
    """sum |x_i| |w_i| for every output of the dot product `producer` on its input `x` (the size of
    the terms the model rounds), and the number of terms per output."""
    if producer.op_type == "SumPool":  # a window sum of s * q: terms of magnitude |q|, one per element
        kh, kw = next(a.ints for a in producer.attribute if a.name == "kernel")
        n, c, h, w_ = x.shape
        kh, kw = (kh, kw) if kh else (h, w_)
        windows = np.abs(x.astype(np.float64)).reshape(n, c, h // kh, kh, w_ // kw, kw)
        return windows.sum(axis=(3, 5)), kh * kw
    w = const(model, producer.input[1]).astype(np.float64)
    if producer.op_type == "XnorPopcountMatMul":  # +-1 times +-1: every term has magnitude 1
        mw = w.shape[0]
        return np.full(x.shape[:-1] + (w.shape[1],), float(mw)), mw
    if producer.op_type == "MatMul":
        return np.abs(x.astype(np.float64)) @ np.abs(w), w.shape[0]
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    node.attribute.extend(producer.attribute)
    graph = helper.make_graph(
        [node], "magnitude", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("w", TensorProto.FLOAT, w.shape, np.abs(w).astype(np.float32).ravel())])
    conv = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    with warnings.catch_warnings():  # the output's shape is left to the run: qonnx warns of it
        warnings.simplefilter("ignore")
        y = execute_onnx(conv, {"x": np.abs(x).astype(np.float32)})["y"].astype(np.float64)
    return y, int(np.prod(w.shape[1:]))


def _sum_magnitude(model: ModelWrapper, context: dict, tensor: str) -> tuple[np.ndarray, int] | None:
    """`_magnitude` of the sum behind `tensor`: a dot product or window sum (through a pool's
    reshape), or a `ScaledAdd` of such sums (ABC-Net's weighted sum of bases, a residual join: alpha
    |a| + beta |b|, the terms of both, an operand that is no sum counting as one term of its own
    size); None for anything else."""
    producer = model.find_producer(tensor)
    while producer is not None and producer.op_type in ("Reshape", "Flatten"):  # a pool's (N, C) view
        producer = model.find_producer(producer.input[0])
    if producer is None:
        return None
    if producer.op_type == "ScaledAdd":
        (ma, ta), (mb, tb) = (_sum_magnitude(model, context, t) or (np.abs(context[t].astype(np.float64)), 1)
                              for t in producer.input[:2])
        alpha, beta = (np.abs(np.asarray(c, np.float64)) for c in getCustomOp(producer).coefficients())
        if alpha.ndim:  # per channel, on axis 1
            shape = [1, -1] + [1] * (ma.ndim - 2)
            alpha, beta = alpha.reshape(shape), beta.reshape(shape)
        return alpha * ma + beta * mb, ta + tb
    if producer.op_type not in ("MatMul", "Conv", "XnorPopcountMatMul", "SumPool"):
        return None
    return _magnitude(model, producer, context[producer.input[0]])


def _decisions_near(model: ModelWrapper, node, acc: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Per element of `acc`: can the node's output differ for a sum within `band` of it? The
    model's sum m lies in [acc - band, acc + band]. Thresholds count T <= m: the count differs from
    the exact one only for a threshold in (acc - band, acc + band]. A table's output for m between
    two integer levels is one of theirs, so the levels within ceil(band) hold every output it can
    give."""
    channels = acc.shape[1]
    table = const(model, node.input[1]).astype(np.float64)
    lift = (1, channels) + (1,) * (acc.ndim - 2) + (-1,)  # (C, K) -> broadcastable against acc[..., None]
    if node.op_type == "MultiThreshold":  # the count of thresholds T <= acc changes at each T
        t = np.broadcast_to(table, (channels, table.shape[1])).reshape(lift)
        a, r = acc[..., None], band[..., None]
        return ((t > a - r) & (t <= a + r)).any(axis=-1)
    reach = np.ceil(band)
    in_min = next(a.i for a in node.attribute if a.name == "in_min")  # Lookup: the entries in reach
    rows = np.broadcast_to(table, (channels, table.shape[-1])).reshape(lift)
    index = (acc - in_min).astype(np.int64)

    def entry(at: np.ndarray) -> np.ndarray:
        at = np.clip(at, 0, rows.shape[-1] - 1)[..., None]
        return np.take_along_axis(np.broadcast_to(rows, at.shape[:-1] + rows.shape[-1:]), at, axis=-1)[..., 0]

    here = entry(index)
    differs = np.zeros(acc.shape, bool)
    for k in range(1, int(reach.max(initial=0)) + 1):
        differs |= (k <= reach) & ((entry(index - k) != here) | (entry(index + k) != here))
    return differs


def near_ties(model: ModelWrapper, context: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per recorded float-tie node, the elements of its output that the model's rounding may decide:
    where its accumulator lay within the rounding bound of one of its thresholds. `model` is the
    integer graph, `context` every tensor of its execution. The bound for an n-term sum is
    (n + EXTRA_ROUNDINGS) unit roundoffs of sum |x_i w_i|, in the sum's own integer levels (a
    first-order bound on float32 summation in any order, with slack for the roundings around it)."""
    near = {}
    nodes = {n.name: n for n in model.graph.node}
    for name in float_tie_nodes(model):
        node = nodes.get(name)
        if node is None or node.input[0] not in context:
            continue
        found = _sum_magnitude(model, context, node.input[0])
        if found is None:
            continue
        acc = context[node.input[0]]
        magnitude, terms = found
        band = (terms + EXTRA_ROUNDINGS) * UNIT_ROUNDOFF * magnitude.reshape(acc.shape)
        near[name] = _decisions_near(model, node, acc, band)
    return near


def tie_frames(model: ModelWrapper, context: dict[str, np.ndarray], frames: int) -> np.ndarray:
    """Per frame: did one of the recorded float-tie thresholds see an accumulator within the
    model's rounding bound of a threshold (`near_ties`)?"""
    tied = np.zeros(frames, bool)
    for differs in near_ties(model, context).values():
        tied |= differs.reshape(frames, -1).any(axis=1)
    return tied


def tie_outputs(model: ModelWrapper, context: dict[str, np.ndarray], output: str | None = None
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The elements of `model`'s output (or of tensor `output`) that a tie can decide: those on
    the path of an element `near_ties` marks (`hwgen.reach`), as bool of the output's shape; and
    per tie node, the frames where it has a near element."""
    out = output or model.graph.output[0].name
    near = near_ties(model, context)
    frames = np.shape(context[out])[0]
    marks = propagate(model, context, {model.get_node_from_name(name).output[0]: m for name, m in near.items()})
    reached = marks.get(out, np.zeros(np.shape(context[out]), bool))
    return reached, {name: m.reshape(frames, -1).any(axis=1) for name, m in near.items()}


"""ApplyFoldingConfig: set PE/SIMD (and FIFO depths) by hand from a FINN-style folding JSON.

    {"Defaults": {"PE": 1}, "MVU_0": {"PE": 16, "SIMD": 49}, "StreamingFifo_3": {"depth": 64}}

Layer names are those of `report.json`. It runs twice: in the fold stage for the compute units,
and after plumbing for the FIFOs, width converters and fan-outs that only exist from then on
(`ops` says which). A name that matches no layer, a key the layer does not have, or a value that
does not divide its dimension is an error naming the layer and parameter.
"""

from __future__ import annotations

from collections.abc import Collection

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError
from hwgen.ops import PLUMBING_OPS, unit_of


def _is_plumbing_name(name: str) -> bool:
    return any(name.startswith(f"{op}_") for op in PLUMBING_OPS)


class ApplyFoldingConfig(Transformation):
    def __init__(self, config: dict, ops: Collection[str]) -> None:
        super().__init__()
        if not isinstance(config, dict):
            raise HwgenError("folding config must be a JSON object of layer names")
        self.config = config
        self.ops = frozenset(ops)
        self.plumbing = self.ops <= PLUMBING_OPS

    def apply(self, model: ModelWrapper):
        nodes = {n.name: n for n in model.graph.node if n.op_type in self.ops}
        for name, entry in self.config.items():
            if name == "Defaults" or _is_plumbing_name(name) != self.plumbing:
                continue
            if name not in nodes:
                raise HwgenError(f"names no layer of this build (layers: {', '.join(nodes)})",
                                 where=f"folding config '{name}'")
            if not isinstance(entry, dict):
                raise HwgenError("must be a JSON object of parameters", where=f"folding config '{name}'")
        defaults = {} if self.plumbing else self.config.get("Defaults", {})
        if not isinstance(defaults, dict):
            raise HwgenError("must be a JSON object of parameters", where="folding config 'Defaults'")
        changed = False
        for name, node in nodes.items():
            op = getCustomOp(node)
            attrs = op.get_nodeattr_types()
            before = {key: op.get_nodeattr(key) for key in attrs}
            for key, value in defaults.items():
                if key in attrs and key in ("PE", "SIMD"):
                    op.set_nodeattr(key, _positive(value, key, "Defaults"))
            for key, value in self.config.get(name, {}).items():
                if key not in attrs:
                    raise HwgenError(f"layer has no parameter '{key}'", where=f"folding config '{name}'")
                op.set_nodeattr(key, _positive(value, key, name))
            try:
                unit_of(model, node)
            except HwgenError as exc:
                raise HwgenError(str(exc).split(": ", 1)[-1], where=f"folding config '{name}'") from None
            changed |= any(op.get_nodeattr(key) != value for key, value in before.items())
        return model, changed


def _positive(value: object, key: str, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise HwgenError(f"'{key}' must be a positive integer, got {value!r}", where=f"folding config '{name}'")
    return value

"""ApplyFoldingConfig: set PE/SIMD by hand from a FINN-style folding JSON.

    {"Defaults": {"PE": 1}, "MVU_0": {"PE": 16, "SIMD": 49}, ...}

Layer names are those of `report.json`. A name that matches no layer, a key the layer does not
have, or a value that does not divide its dimension is an error naming the layer and parameter.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError
from hwgen.ops import unit_of


class ApplyFoldingConfig(Transformation):
    def __init__(self, config: dict) -> None:
        super().__init__()
        if not isinstance(config, dict):
            raise HwgenError("folding config must be a JSON object of layer names")
        self.config = config

    def apply(self, model: ModelWrapper):
        nodes = {n.name: n for n in model.graph.node}
        for name in self.config:
            if name != "Defaults" and name not in nodes:
                raise HwgenError(f"names no layer of this build (layers: {', '.join(nodes)})",
                                 where=f"folding config '{name}'")
        defaults = self.config.get("Defaults", {})
        changed = False
        for name, node in nodes.items():
            op = getCustomOp(node)
            attrs = op.get_nodeattr_types()
            before = {key: op.get_nodeattr(key) for key in attrs}
            for key, value in defaults.items():
                if key in attrs and key in ("PE", "SIMD"):
                    op.set_nodeattr(key, int(value))
            for key, value in self.config.get(name, {}).items():
                if key not in attrs:
                    raise HwgenError(f"layer has no parameter '{key}'", where=f"folding config '{name}'")
                if not isinstance(value, int) or value < 1:
                    raise HwgenError(f"'{key}' must be a positive integer, got {value!r}",
                                     where=f"folding config '{name}'")
                op.set_nodeattr(key, value)
            try:
                unit_of(model, node)
            except HwgenError as exc:
                raise HwgenError(str(exc).split(": ", 1)[-1], where=f"folding config '{name}'") from None
            changed |= any(op.get_nodeattr(key) != value for key, value in before.items())
        return model, changed

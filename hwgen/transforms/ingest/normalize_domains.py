"""NormalizeCustomOpDomains.

    Quant | BipolarQuant | Trunc | MultiThreshold | XnorPopcountMatMul
        in domain onnx.brevitas | finn.custom_op.general | finn | (none)
    =>  the same op in domain qonnx.custom_op.general

Early Brevitas exports wrote `onnx.brevitas`, FINN-ONNX graphs `finn.custom_op.general` (and before
that `finn`). The ops are the same: qonnx executes them once they carry its own domain.
"""

from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

QONNX_DOMAIN = "qonnx.custom_op.general"
#: the custom ops that qonnx itself defines and hwgen reads
QONNX_OPS = frozenset({"Quant", "BipolarQuant", "Trunc", "MultiThreshold", "XnorPopcountMatMul"})
#: domains under which other producers wrote those same ops
FOREIGN_DOMAINS = frozenset({"", "ai.onnx", "onnx.brevitas", "finn.custom_op.general", "finn"})


def normalize_domains(model: ModelWrapper) -> bool:
    """Rewrite the domains in place, and import the QONNX domain where a node uses it (qonnx's
    `ModelWrapper` renames old FINN domains itself but leaves the import out); True if anything
    changed."""
    changed = False
    for node in model.graph.node:
        if node.op_type in QONNX_OPS and node.domain in FOREIGN_DOMAINS:
            node.domain = QONNX_DOMAIN
            changed = True
    used = any(node.domain == QONNX_DOMAIN for node in model.graph.node)
    if used and not any(o.domain == QONNX_DOMAIN for o in model.model.opset_import):
        model.model.opset_import.append(helper.make_opsetid(QONNX_DOMAIN, 1))
        changed = True
    return changed


class NormalizeCustomOpDomains(Transformation):
    def apply(self, model: ModelWrapper):
        return model, normalize_domains(model)

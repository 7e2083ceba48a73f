"""UpgradeOpset.

    graph in ONNX opset 7 .. 12   =>   the same graph in opset 13
    IR version 3 .. 6             =>   IR version 7 (the first that opset 13 belongs to)
    IR version 11 ..              =>   IR version 10 (what onnxruntime executes)

Opset 13 is where the ops streamlining reads settled into their present form: `Squeeze` /
`Unsqueeze` take their axes as an input, `TopK` its k, `Dropout` its ratio, `BatchNormalization`
lost `spatial`. Upgrading once lets every later rewrite read one form. ONNX's own version
converter does it (custom-domain nodes pass through unchanged, datatype annotations are carried
over); newer opsets are left as they are.
"""

from __future__ import annotations

import onnx
from onnx import helper, version_converter
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.errors import HwgenError

#: the default-domain opset every later rewrite reads
TARGET_OPSET = 13
#: the IR version that goes with it
TARGET_IR = 7
#: the newest IR version onnxruntime 1.31 executes; newer onnx releases write higher numbers for
#: files that use nothing newer than the opsets hwgen reads
MAX_IR = 10
#: the oldest opset ONNX's version converter and hwgen's tests cover
OLDEST_OPSET = 7


def default_opset(proto: onnx.ModelProto) -> int:
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1


class UpgradeOpset(Transformation):
    def apply(self, model: ModelWrapper):
        proto = model.model
        version = default_opset(proto)
        changed = False
        if version < OLDEST_OPSET:
            raise HwgenError(f"ONNX opset {version} is older than the oldest supported ({OLDEST_OPSET}); "
                             "re-export the model with a newer exporter", where="model opset_import")
        if version < TARGET_OPSET:
            custom = [o for o in proto.opset_import if o.domain not in ("", "ai.onnx")]
            try:
                upgraded = version_converter.convert_version(proto, TARGET_OPSET)
            except Exception as exc:  # the converter names the op it cannot convert
                raise HwgenError(f"cannot upgrade from ONNX opset {version} to {TARGET_OPSET}: "
                                 f"{str(exc).splitlines()[0]}", where="model opset_import") from None
            for o in custom:
                if not any(u.domain == o.domain for u in upgraded.opset_import):
                    upgraded.opset_import.append(helper.make_opsetid(o.domain, o.version))
            # the converter drops the datatype annotations (FINN's and QONNX's `finn_datatype`)
            del upgraded.graph.quantization_annotation[:]
            upgraded.graph.quantization_annotation.extend(proto.graph.quantization_annotation)
            proto.CopyFrom(upgraded)
            changed = True
        if proto.ir_version < TARGET_IR:
            proto.ir_version = TARGET_IR
            changed = True
        if proto.ir_version > MAX_IR:
            proto.ir_version = MAX_IR
            changed = True
        return model, changed

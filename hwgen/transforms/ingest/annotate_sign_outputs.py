"""AnnotateSignOutputs.

    Sign(x) -> y : FLOAT32      =>      Sign(x) -> y : INT2

ONNX `Sign` (the activation of early Brevitas exports) is a quantizer with three levels:
-1, 0 and +1, with sign(0) = 0 as ONNX defines it (Brevitas' own binary quantizer maps 0 to +1;
hwgen is exact to the model as given). Annotating its output as an integer lets the next layer read
it as integer levels; where a Sign follows an integer accumulator, streamlining turns it into
thresholds and drops the 0 level when no accumulator value reaches it, which leaves a bipolar
(XNOR) stream. A Sign on the float input runs on the host and feeds the accelerator 2-bit values.
"""

from __future__ import annotations

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

#: the narrowest datatype the units accept that holds {-1, 0, +1}
SIGN_DTYPE = DataType["INT2"]


class AnnotateSignOutputs(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for node in model.graph.node:
            if node.op_type == "Sign" and model.get_tensor_datatype(node.output[0]) != SIGN_DTYPE:
                model.set_tensor_datatype(node.output[0], SIGN_DTYPE)
                changed = True
        return model, changed

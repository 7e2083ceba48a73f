"""InferThresholding.

    MultiThreshold(x: int, T)   =>   Thresholding(x, T)

for thresholds that `InferMVU` could not fuse into a matrix-vector unit (e.g. a quantizer right on
the accelerator input, or after a residual add).
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, const, insert_after, make_node
from hwgen.transforms.hardware.infer_mvu import threshold_output


class InferThresholding(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node
                   if n.op_type == "MultiThreshold" and model.get_tensor_datatype(n.input[0]).is_integer()]
        for mt in matches:
            odt, bias = threshold_output(model, mt)
            shape = model.get_tensor_shape(mt.input[0])
            channels = int(const(model, mt.input[1]).shape[0])
            pixels = 1
            for d in shape[2:] if len(shape) > 2 else []:
                pixels *= d
            node = make_node("Thresholding", [mt.input[0], mt.input[1]], [mt.output[0]], domain=HWGEN_DOMAIN,
                             name=fresh_node_name(model, "Thresholding"), channels=channels, PE=1, pixels=pixels,
                             input_dtype=model.get_tensor_datatype(mt.input[0]).name,
                             output_dtype=odt.name, out_bias=bias)
            insert_after(model, mt, [node])
            model.graph.node.remove(mt)
        return model, bool(matches)

"""InferThresholding.

    MultiThreshold(x: int, T)   =>   Thresholding(x, T)

for thresholds that `InferMVU` could not fuse into a matrix-vector unit (e.g. a quantizer right on
the accelerator input, after a residual add, or an 8-bit requantization after a layer). Of the
unit's forms, many thresholds per channel take the binary search, or, where they are an affine
function of the input on its whole range (`has_affine_form`: evenly spaced, as a BatchNorm and
rounding make them), a multiplier and two numbers per channel (`affine`).
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, const, insert_after, make_node
from hwgen.transforms.hardware.geometry import channels_and_pixels
from hwgen.transforms.hardware.infer_mvu import threshold_output, threshold_rows
from hwgen.units.datapath import is_bipolar
from hwgen.units.thresholding import BINARY_SEARCH_MIN_STEPS, has_affine_form


class InferThresholding(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node
                   if n.op_type == "MultiThreshold" and model.get_tensor_datatype(n.input[0]).is_integer()]
        for mt in matches:
            odt, bias = threshold_output(model, mt)
            channels, pixels = channels_and_pixels(model, mt.input[0])
            idt = model.get_tensor_datatype(mt.input[0])
            rows = threshold_rows(model, mt, channels)
            many = const(model, mt.input[1]).shape[1] >= BINARY_SEARCH_MIN_STEPS
            affine = many and not is_bipolar(odt) and has_affine_form(const(model, rows), idt)
            node = make_node("Thresholding", [mt.input[0], rows], [mt.output[0]],
                             domain=HWGEN_DOMAIN,
                             name=fresh_node_name(model, "Thresholding"), channels=channels, PE=1, pixels=pixels,
                             input_dtype=model.get_tensor_datatype(mt.input[0]).name,
                             output_dtype=odt.name, out_bias=bias,
                             binary_search=int(many and not affine), affine=int(affine))
            insert_after(model, mt, [node])
            model.graph.node.remove(mt)
        return model, bool(matches)

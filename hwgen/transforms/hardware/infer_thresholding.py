"""InferThresholding.

    MultiThreshold(x: int, T)   =>   Requantize(x, coefficients)      one or two affine pieces
                                =>   Thresholding(x, T)               otherwise

for thresholds that `InferMVU` could not fuse into a matrix-vector unit (e.g. a quantizer right on
the accelerator input, after a residual add, or an 8-bit requantization after a layer). Many
thresholds per channel (an 8-bit requantization: 255) become arithmetic where one or two affine
pieces reproduce them on every value the input can take (`hwgen.units.piecewise`; a layer's
accumulator within what its weights reach): a multiplier and a few numbers per channel instead of
255 thresholds. Where none does, the thresholds stay, searched in a binary search, and the reason
is noted for the report; few thresholds are compared all at once.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import HWGEN_DOMAIN, fresh_node_name, const, insert_after, make_node
from hwgen.transforms.hardware.geometry import channels_and_pixels
from hwgen.transforms.hardware.infer_mvu import threshold_output, threshold_rows
from hwgen.transforms.hardware.requantization import note_kept, reachable_bounds, requantize_node
from hwgen.units.datapath import is_bipolar
from hwgen.units.piecewise import fit_thresholds
from hwgen.units.thresholding import BINARY_SEARCH_MIN_STEPS
import numpy as np


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
            form = None
            if many and not is_bipolar(odt):
                lo, hi = reachable_bounds(model, mt.input[0], channels)
                form = fit_thresholds(np.ceil(const(model, rows)).astype(np.int64), lo, hi, bias,
                                      int(odt.min()), int(odt.max()))
            if form is not None:
                node = requantize_node(model, form, mt.input[0], mt.output[0], channels, pixels, idt.name, odt.name)
            else:
                node = make_node("Thresholding", [mt.input[0], rows], [mt.output[0]], domain=HWGEN_DOMAIN,
                                 name=fresh_node_name(model, "Thresholding"), channels=channels, PE=1,
                                 pixels=pixels, input_dtype=idt.name, output_dtype=odt.name, out_bias=bias,
                                 binary_search=int(many))
                if many:
                    note_kept(model, node.name, "thresholds: no one or two affine pieces reproduce them on every "
                                                "value the input can take")
            insert_after(model, mt, [node])
            model.graph.node.remove(mt)
        return model, bool(matches)

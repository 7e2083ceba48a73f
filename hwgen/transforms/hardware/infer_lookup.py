"""InferLookup.

    Lookup(x: int, table; in_min)     =>     Requantize(x, coefficients)       one or two affine pieces
                                      =>     ChannelwiseLookup(x; table over x's whole datatype)

A table (RPReLU's shift, PReLU, shift between two quantizers; a join's rescaling of its sum;
any function of one integer) becomes arithmetic where one or two affine pieces per channel
reproduce every entry (`hwgen.units.piecewise`): a few numbers per channel instead of a row of
the input's range; a channel that no two pieces reproduce (the model's float rounding can put a
value off every line) keeps its row beside them. Where more than an eighth do, the table stays, and the reason is noted for the report: the unit
indexes it by every value of the input datatype, and entries below `in_min` or past the table's
end (values the input never takes) repeat the nearest entry.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.ops.integer import DOMAIN as INTEGER_DOMAIN
from hwgen.transforms.graph import HWGEN_DOMAIN, add_const, const, fresh_node_name, insert_after, make_node
from hwgen.transforms.hardware.geometry import channels_and_pixels
from hwgen.transforms.hardware.requantization import note_kept, requantize_node
from hwgen.units.piecewise import fit_table


#: a table with more of its channels than this share off every two-piece form stays a table
MAX_TABLE_ROWS_SHARE = 1 / 8


class InferLookup(Transformation):
    def apply(self, model: ModelWrapper):
        matches = [n for n in model.graph.node if n.op_type == "Lookup" and n.domain == INTEGER_DOMAIN]
        for lookup in matches:
            op = getCustomOp(lookup)
            idt = model.get_tensor_datatype(lookup.input[0])
            table = np.rint(const(model, lookup.input[1])).astype(np.int64)
            channels, pixels = channels_and_pixels(model, lookup.output[0])
            odt = op.get_nodeattr("out_dtype")
            out = DataType[odt]
            fit = fit_table(table, op.get_nodeattr("in_min"), int(out.min()), int(out.max()))
            values = np.arange(int(idt.min()), int(idt.max()) + 1) - op.get_nodeattr("in_min")
            full = table[:, np.clip(values, 0, table.shape[1] - 1)]
            if fit.form is not None and fit.failed.sum() <= table.shape[0] * MAX_TABLE_ROWS_SHARE:
                rows = np.cumsum(fit.failed) * fit.failed  # channel -> its row of the kept ones (1-based)
                node = requantize_node(model, fit.form, lookup.input[0], lookup.output[0], channels, pixels, idt.name,
                                       odt, rows, full[fit.failed] if fit.failed.any() else None)
                if fit.failed.any():
                    note_kept(model, node.name, f"{int(fit.failed.sum())} of {table.shape[0]} channels read a "
                                                f"table row: {fit.reason}")
            else:
                node = make_node("ChannelwiseLookup", [lookup.input[0], add_const(model, full.astype(np.float32))],
                                 list(lookup.output), domain=HWGEN_DOMAIN,
                                 name=fresh_node_name(model, "ChannelwiseLookup"), channels=channels, PE=1,
                                 pixels=pixels, input_dtype=idt.name, output_dtype=odt)
                note_kept(model, node.name, f"table: {fit.reason}")
            insert_after(model, lookup, [node])
            model.graph.node.remove(lookup)
        return model, bool(matches)

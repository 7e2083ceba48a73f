"""MultiThresholdChannelsFirst.

    x (N, H, W, C) -> MultiThreshold(data_layout=NHWC)
      =>  x -> Transpose(to N, C, H, W) -> MultiThreshold(data_layout=NCHW) -> Transpose(back)

FINN-ONNX graphs may threshold channel-last tensors and say so in `data_layout`. Every hwgen
rewrite reads channels on axis 1, so the layout is made explicit as a pair of Transposes around a
channels-first MultiThreshold (exact: a transpose only moves values); `CancelInverseTransposes`
then removes the pairs that meet a transpose already in the graph.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from hwgen.transforms.graph import insert_after, make_node, new_tensor


def channel_axis(layout: str, rank: int) -> int:
    """Where the channels are: the position of 'C' in `layout` (axis 1 when unsaid)."""
    return layout.index("C") if layout and len(layout) == rank and "C" in layout else 1


def channels_first_layout(rank: int) -> str:
    return {2: "NC", 3: "NCW", 4: "NCHW"}.get(rank, "")


class MultiThresholdChannelsFirst(Transformation):
    def apply(self, model: ModelWrapper):
        changed = False
        for mt in [n for n in model.graph.node if n.op_type == "MultiThreshold"]:
            op = getCustomOp(mt)
            shape = model.get_tensor_shape(mt.input[0])
            rank = len(shape)
            axis = channel_axis(op.get_nodeattr("data_layout"), rank)
            if axis == 1:
                continue
            perm = [0, axis] + [i for i in range(1, rank) if i != axis]  # NHWC -> NCHW
            inverse = [perm.index(i) for i in range(rank)]
            moved = [shape[i] for i in perm]
            x_first = new_tensor(model, shape=moved, dtype=model.get_tensor_datatype(mt.input[0]))
            y_first = new_tensor(model, shape=moved, dtype=model.get_tensor_datatype(mt.output[0]))
            to_first = make_node("Transpose", [mt.input[0]], [x_first], perm=perm, name=f"{mt.name}_to_channels_first")
            back = make_node("Transpose", [y_first], [mt.output[0]], perm=inverse, name=f"{mt.name}_to_layout")
            mt.input[0], mt.output[0] = x_first, y_first
            op.set_nodeattr("data_layout", channels_first_layout(rank))
            index = list(model.graph.node).index(mt)
            model.graph.node.insert(index, to_first)
            insert_after(model, mt, [back])
            changed = True
        return model, changed

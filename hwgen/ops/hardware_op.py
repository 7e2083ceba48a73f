"""The one generic bridge between a graph node and its hardware unit dataclass.

A hardware node's inputs are its streams first (as many as `Unit.stream_counts` says), then its
arrays (`weights`, `thresholds`, ... in the order of `ARRAY_FIELDS`, as initializers); its outputs
are its output streams. Every other dataclass field is a node attribute of the same name.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.base import CustomOp
from qonnx.custom_op.registry import getCustomOp

from hwgen.errors import HwgenError
from hwgen.units.base import Unit

#: dataclass fields that travel as node inputs (initializers), in this order after the streams
ARRAY_FIELDS = ("weights", "thresholds", "table", "coefficients")


@lru_cache(maxsize=None)
def _fields(unit_cls: type) -> tuple[list[tuple[str, str, bool, object]], list[str]]:
    """(scalar attributes as (name, onnx type char, required, default), array field names)."""
    scalars, arrays = [], []
    for f in dataclasses.fields(unit_cls):
        if not f.init:
            continue
        if f.name in ARRAY_FIELDS:
            arrays.append(f.name)
            continue
        hint = str(f.type)
        has_default = f.default is not dataclasses.MISSING
        if "None" in hint and has_default and f.default is None:
            continue  # optional parameters keep their dataclass default on hardware nodes
        if hint.startswith("tuple[int"):
            scalars.append((f.name, "ints", not has_default, list(f.default) if has_default else []))
        elif hint.startswith("tuple[BaseDataType") or hint.startswith("tuple[DataType"):
            scalars.append((f.name, "strings", not has_default,
                            [d.name for d in f.default] if has_default else []))
        elif "DataType" in hint:
            scalars.append((f.name, "s", not has_default, f.default.name if has_default else ""))
        elif hint in ("int", "bool"):
            scalars.append((f.name, "i", not has_default, int(f.default) if has_default else 0))
        else:
            raise TypeError(f"{unit_cls.__name__}.{f.name}: unsupported field type {hint}")
    return scalars, arrays


class HardwareOp(CustomOp):
    """A node whose attributes are the fields of `unit_cls`; subclasses only name the class."""

    unit_cls: type[Unit]

    def get_nodeattr_types(self):
        scalars, _ = _fields(self.unit_cls)
        return {name: (kind, required, default) for name, kind, required, default in scalars}

    def scalar_params(self) -> dict[str, object]:
        scalars, _ = _fields(self.unit_cls)
        values: dict[str, object] = {}
        for name, kind, _, _ in scalars:
            value = self.get_nodeattr(name)
            if kind == "s":
                values[name] = DataType[value]
            elif kind == "strings":
                values[name] = tuple(DataType[v] for v in value)
            elif kind == "ints":
                values[name] = tuple(int(v) for v in value)
            else:
                values[name] = int(value)
        return values

    def stream_counts(self) -> tuple[int, int]:
        """(input streams, output streams) of this node's unit."""
        return self.unit_cls.stream_counts(self.scalar_params())

    def stream_inputs(self) -> list[str]:
        return list(self.onnx_node.input[: self.stream_counts()[0]])

    def array_tensors(self) -> dict[str, str]:
        """Array field name -> the node input that holds it (only those present)."""
        _, names = _fields(self.unit_cls)
        given = self.onnx_node.input[self.stream_counts()[0]:]
        return {name: t for name, t in zip(names, given) if t}

    def unit_with(self, arrays: dict[str, np.ndarray | None]) -> Unit:
        _, array_names = _fields(self.unit_cls)
        kwargs = self.scalar_params()
        for name in array_names:
            value = arrays.get(name)
            if value is not None:
                # for integer inputs, x >= 2.5 is x >= 3: float thresholds round up, exactly
                value = np.ceil(value) if name == "thresholds" else np.rint(value)
            kwargs[name] = None if value is None else value.astype(np.int64)
        try:
            return self.unit_cls(**kwargs)
        except HwgenError as exc:
            raise HwgenError(str(exc), where=f"layer {self.onnx_node.name}") from None

    def make_shape_compatible_op(self, model):
        # intermediate shapes may be unknown here (shape inference hides all custom ops at once):
        # the unit's own parameters and the graph's batch size determine the output shape. ONNX
        # shape inference takes one stand-in node with one output; a unit's further outputs keep
        # the shapes their tensors were given when the node was made.
        unit = unit_of(model, self.onnx_node)
        batch = model.get_tensor_shape(model.graph.input[0].name)[0]
        return self.make_const_shape_op([batch, unit.outputs[0].elems_per_frame])

    def infer_node_datatype(self, model):
        unit = unit_of(model, self.onnx_node)
        for tensor, spec in zip(self.onnx_node.output, unit.outputs):
            model.set_tensor_datatype(tensor, spec.dtype)

    def execute_node(self, context, graph):
        node = self.onnx_node
        arrays = {name: context[t] for name, t in self.array_tensors().items()}
        unit = self.unit_with(arrays)
        streams = [context[t] for t in self.stream_inputs()]
        batch = streams[0].shape[0]
        frames = [np.rint(x).astype(np.int64).reshape(batch, -1) for x in streams]
        result = unit.reference(*frames)
        outs = result if isinstance(result, tuple) else (result,)
        for tensor, y, spec in zip(node.output, outs, unit.outputs):
            context[tensor] = y.reshape(batch, spec.elems_per_frame).astype(np.float32)

    def verify_node(self):
        return []


def unit_of(model: ModelWrapper, node) -> Unit:
    """The unit dataclass behind a hardware node, with its arrays read from the model."""
    op = getCustomOp(node)
    if not isinstance(op, HardwareOp):
        raise HwgenError(f"op '{node.op_type}' is not a hardware unit", where=f"node {node.name}")
    return op.unit_with({name: model.get_initializer(t) for name, t in op.array_tensors().items()})

"""The one generic bridge between a graph node and its hardware unit dataclass."""

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

#: dataclass fields that travel as node inputs (initializers), in this order after the data input
ARRAY_FIELDS = ("weights", "thresholds")


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
        if "DataType" in hint:
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

    def unit_with(self, arrays: dict[str, np.ndarray | None]) -> Unit:
        scalars, array_names = _fields(self.unit_cls)
        kwargs: dict[str, object] = {}
        for name, kind, _, _ in scalars:
            value = self.get_nodeattr(name)
            kwargs[name] = DataType[value] if kind == "s" else int(value)
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

    def array_inputs(self) -> list[str]:
        _, names = _fields(self.unit_cls)
        return names

    def make_shape_compatible_op(self, model):
        # intermediate shapes may be unknown here (shape inference hides all custom ops at once):
        # the unit's own parameters and the graph's batch size determine the output shape
        unit = unit_of(model, self.onnx_node)
        batch = model.get_tensor_shape(model.graph.input[0].name)[0]
        return self.make_const_shape_op(self.output_shape(unit, [batch]))

    def output_shape(self, unit: Unit, in_shape: list[int]) -> list[int]:
        return [in_shape[0], unit.outputs[0].elems_per_frame]

    def infer_node_datatype(self, model):
        unit = unit_of(model, self.onnx_node)
        model.set_tensor_datatype(self.onnx_node.output[0], unit.outputs[0].dtype)

    def execute_node(self, context, graph):
        node = self.onnx_node
        names = self.array_inputs()
        arrays = {name: context[t] for name, t in zip(names, node.input[1:]) if t}
        unit = self.unit_with(arrays)
        x = context[node.input[0]]
        frames = np.rint(x).astype(np.int64).reshape(x.shape[0], -1)
        y = unit.reference(frames)
        context[node.output[0]] = y.reshape(self.output_shape(unit, list(x.shape))).astype(np.float32)

    def verify_node(self):
        return []


def unit_of(model: ModelWrapper, node) -> Unit:
    """The unit dataclass behind a hardware node, with its arrays read from the model."""
    op = getCustomOp(node)
    if not isinstance(op, HardwareOp):
        raise HwgenError(f"op '{node.op_type}' is not a hardware unit", where=f"node {node.name}")
    arrays = {name: model.get_initializer(t) for name, t in zip(op.array_inputs(), node.input[1:]) if t}
    return op.unit_with(arrays)

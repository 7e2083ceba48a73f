"""Loading models into the QONNX IR.

Three kinds of input arrive here: a QONNX `.onnx` file (`Quant`, `BipolarQuant`, `Trunc` ops, as
Brevitas and the QONNX model zoo write them), a Brevitas `nn.Module` (exported through Brevitas'
own QONNX export), or a FINN-style graph that already holds `MultiThreshold` /
`XnorPopcountMatMul`. All three leave `prepare()` as one cleaned-up `ModelWrapper` with shapes and
datatypes inferred.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path

import onnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.cleanup import cleanup_model

from hwgen.errors import HwgenError

# onnxruntime 1.31 executes models up to IR version 13; files written by newer onnx releases
# carry a higher number although they use nothing newer than the operator sets we support.
MAX_IR_VERSION = 10

QONNX_DOMAIN = "qonnx.custom_op.general"
_QONNX_OPS = {"Quant", "BipolarQuant", "Trunc", "MultiThreshold", "XnorPopcountMatMul"}


def load_onnx(path: str | Path) -> ModelWrapper:
    """Read an ONNX file, with a one-line error when it is missing or not ONNX."""
    path = Path(path)
    if not path.exists():
        raise HwgenError("no such file", where=str(path))
    if path.is_dir():
        raise HwgenError("is a folder, not an ONNX file", where=str(path))
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for garbage
        raise HwgenError(f"not an ONNX model ({type(exc).__name__})", where=str(path)) from None
    if len(proto.graph.node) == 0:
        raise HwgenError("not an ONNX model (the graph has no nodes)", where=str(path))
    return ModelWrapper(proto)


def export_brevitas(module, input_shape: tuple[int, ...]) -> ModelWrapper:
    """Export a Brevitas `nn.Module` to QONNX with Brevitas' exporter, in eval mode."""
    import torch
    from brevitas.export import export_qonnx

    was_training = module.training
    module.eval()
    torch_onnx_log = logging.getLogger("torch.onnx")
    level = torch_onnx_log.level
    torch_onnx_log.setLevel(logging.ERROR)  # "torchvision is not installed" notes are noise here
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
            warnings.simplefilter("ignore")
            path = Path(tmp) / "model.onnx"
            export_qonnx(module, torch.zeros(input_shape), str(path))
            return ModelWrapper(onnx.load(str(path)))
    finally:
        torch_onnx_log.setLevel(level)
        module.train(was_training)


def prepare_for_execution(model: ModelWrapper) -> ModelWrapper:
    """The least that QONNX execution needs: an IR version onnxruntime accepts and the QONNX
    domain on QONNX ops (older exporters wrote `onnx.brevitas` or `finn.custom_op.general`)."""
    proto = model.model
    if proto.ir_version > MAX_IR_VERSION:
        proto.ir_version = MAX_IR_VERSION
    for node in proto.graph.node:
        if node.op_type in _QONNX_OPS and node.domain in ("", "onnx.brevitas", "finn.custom_op.general"):
            node.domain = QONNX_DOMAIN
    return model


def prepare(model: ModelWrapper) -> ModelWrapper:
    """Clean up a freshly loaded graph: custom-op domains, IR version, shapes, names, datatypes."""
    model = prepare_for_execution(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cleanup_model(model)
        graph = model.graph
        if len(graph.input) != 1 or len(graph.output) != 1:
            raise HwgenError(
                f"the graph has {len(graph.input)} inputs and {len(graph.output)} outputs; "
                "hwgen builds graphs with exactly one of each"
            )
        model = model.transform(InferShapes())
        model = infer_datatypes_keeping_annotations(model)
    return model


def infer_datatypes_keeping_annotations(model: ModelWrapper) -> ModelWrapper:
    """QONNX datatype inference, node by node, except that an integer datatype already annotated on
    a tensor wins: FINN-style graphs carry meaningful annotations (e.g. BINARY on the {0,1} input of
    an `XnorPopcountMatMul`, made by a Mul) that plain inference would reset to FLOAT32."""
    from qonnx.transformation.infer_datatypes import _infer_node_datatype

    for node in model.graph.node:
        given = {t: model.get_tensor_datatype(t) for t in node.output}
        _infer_node_datatype(model, node, False)
        for tensor, dtype in given.items():
            if dtype.is_integer():
                model.set_tensor_datatype(tensor, dtype)
    return model

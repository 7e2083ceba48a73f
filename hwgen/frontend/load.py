"""Loading models into the QONNX IR.

Three kinds of input arrive here: a QONNX `.onnx` file (`Quant`, `BipolarQuant`, `Trunc` ops, as
Brevitas and the QONNX model zoo write them), a Brevitas `nn.Module` (exported through Brevitas'
own QONNX export), or a FINN-style graph that already holds `MultiThreshold` /
`XnorPopcountMatMul`, in any IR version from 3 and opset from 7 (older exports, FINN-ONNX).
All leave `prepare()` as one ingested `ModelWrapper` (`INGEST` in the pipeline): opset 13 or newer,
static shapes, QONNX domains, datatypes inferred.
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
from qonnx.transformation.general import RemoveStaticGraphInputs

from hwgen.errors import HwgenError
from hwgen.transforms.ingest.normalize_domains import normalize_domains
from hwgen.transforms.ingest.upgrade_opset import MAX_IR as MAX_IR_VERSION


def load_onnx(path: str | Path) -> ModelWrapper:
    """Read an ONNX file, with a one-line error when it is missing or not ONNX."""
    path = Path(path)
    if not path.exists():
        raise HwgenError("no such file", where=str(path))
    if path.is_dir():
        raise HwgenError("is a folder, not an ONNX file", where=str(path))
    try:
        proto = onnx.load(str(path), load_external_data=False)
        _read_every_string(proto)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for garbage
        raise HwgenError(f"not an ONNX model ({type(exc).__name__})", where=str(path)) from None
    _load_external_data(proto, path)
    if len(proto.graph.node) == 0:
        raise HwgenError("not an ONNX model (the graph has no nodes)", where=str(path))
    initializers = {i.name for i in proto.graph.initializer}
    if not any(i.name not in initializers for i in proto.graph.input):
        raise HwgenError("the graph has no input", where=str(path))
    try:
        return ModelWrapper(proto)
    except AssertionError as exc:  # qonnx asserts on malformed graphs (e.g. a tensor declared twice)
        raise HwgenError(f"malformed ONNX graph: {exc}", where=str(path)) from None


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    """The tensors a file keeps beside it (torch's newer exporter writes `model.onnx` and
    `model.onnx.data`) read in; a data file that is missing or too short is one line naming it."""
    external = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    for tensor in external:
        info = {e.key: e.value for e in tensor.external_data}
        data = path.parent / info.get("location", "")
        end = int(info.get("offset", 0)) + int(info.get("length", 0))
        if not data.is_file():
            raise HwgenError(f"tensor '{tensor.name}' is kept in '{data.name}' beside it, which does not exist: "
                             "copy the data file with the model", where=str(path))
        if data.stat().st_size < end:
            raise HwgenError(f"tensor '{tensor.name}' needs bytes up to {end:,} of '{data.name}', which has "
                             f"{data.stat().st_size:,}: the data file is truncated or not this model's", where=str(path))
    if external:
        onnx.load_external_data_for_model(proto, str(path.parent))


def _read_every_string(proto: onnx.ModelProto) -> None:
    """Touch every name the graph holds: protobuf decodes strings lazily, so a file with bytes that
    are not UTF-8 in a name would fail later, deep inside a rewrite."""
    graph = proto.graph
    for node in graph.node:
        _ = (node.name, node.op_type, node.domain, list(node.input), list(node.output),
             [(a.name, a.s) for a in node.attribute])
    for v in list(graph.input) + list(graph.output) + list(graph.value_info) + list(graph.initializer):
        _ = v.name
    for a in graph.quantization_annotation:
        _ = (a.tensor_name, [(e.key, e.value) for e in a.quant_parameter_tensor_names])
    _ = [(o.domain, o.version) for o in proto.opset_import]


def export_brevitas(module, input_shape: tuple[int, ...], **export_options) -> ModelWrapper:
    """Export a Brevitas `nn.Module` to QONNX with Brevitas' exporter, in eval mode.

    `export_options` go to `torch.onnx.export` through Brevitas: `dynamo=False` takes the
    TorchScript exporter, `opset_version=9` an old opset, `dynamic_axes` a dynamic batch axis."""
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
            export_qonnx(module, torch.zeros(input_shape), str(path), **export_options)
            return ModelWrapper(onnx.load(str(path)))
    finally:
        torch_onnx_log.setLevel(level)
        module.train(was_training)


def prepare_for_execution(model: ModelWrapper) -> ModelWrapper:
    """The least that QONNX execution needs, leaving the model's ops as they are: an IR version
    onnxruntime accepts, the QONNX domain on QONNX ops (older exporters wrote `onnx.brevitas` or
    `finn.custom_op.general`), and initializers no longer listed as graph inputs (IR < 4)."""
    proto = model.model
    if proto.ir_version > MAX_IR_VERSION:
        proto.ir_version = MAX_IR_VERSION
    normalize_domains(model)
    model = model.transform(RemoveStaticGraphInputs(), cleanup=False)
    if proto.ir_version < 4:
        model.model.ir_version = 4
    return model


def prepare(model: ModelWrapper) -> ModelWrapper:
    """Ingest a freshly loaded graph (`INGEST` in the pipeline): one opset, static shapes, no shape
    arithmetic, QONNX domains, datatypes inferred; then check that every op is one hwgen builds."""
    from hwgen.frontend.support import check_connected, check_known_ops, check_schemas, check_supported
    from hwgen.transforms.pipeline import INGEST, NAMES, apply_all

    check_known_ops(model)
    check_connected(model)
    check_schemas(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _ingest(model, INGEST)
        check_supported(model)
        return apply_all(model, NAMES)


def _ingest(model: ModelWrapper, transforms: list) -> ModelWrapper:
    """The ingest rewrites, in one `apply_all` (one copy of the graph, not one per rewrite: an
    ImageNet network's is 200 MB). The model is the user's file, read for the first time here: when
    ONNX's shape inference, its version converter or QONNX finds it malformed (a cycle, shapes that
    disagree, an attribute out of range), that is one line naming the step, not a traceback."""
    from hwgen.transforms.pipeline import RewriteFailure, apply_all

    try:
        return apply_all(model, transforms)
    except RewriteFailure as exc:  # the libraries raise many kinds for a malformed graph
        raise HwgenError(f"the model is malformed: ingest step {exc}") from None

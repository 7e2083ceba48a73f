"""Front end: bring a model in (QONNX file, Brevitas module, FINN-style graph), clean it up and
check that every op in it is one hwgen knows."""

from hwgen.frontend.load import load_onnx, export_brevitas, prepare
from hwgen.frontend.support import check_connected, check_known_ops, check_supported

__all__ = ["load_onnx", "export_brevitas", "prepare", "check_connected", "check_known_ops", "check_supported"]

"""hwgen: binary neural networks from Brevitas/QONNX to bit-exact streaming FPGA accelerators."""

from hwgen.errors import HwgenError

__all__ = ["HwgenError"]

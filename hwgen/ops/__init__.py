"""QONNX custom ops (domain `hwgen.ops`) for hardware units.

A hardware node in the graph carries the scalar parameters of its unit as attributes with the very
same names (`PE`, `SIMD`, `MW`, `MH`, ...) and its arrays (`weights`, `thresholds`) as initializer
inputs. Executing the node runs the unit's numpy reference, so a graph of hardware nodes stays
executable by `qonnx.core.onnx_exec.execute_onnx` and is checked bit-exact against the integer graph.
"""

from __future__ import annotations

from hwgen.ops.hardware_op import HardwareOp, unit_of
from hwgen.ops.kinds import COMPUTE_OPS, FOLDING, HARDWARE_OPS, PLUMBING_OPS

# qonnx looks up custom ops of domain "hwgen.ops" in this dict
custom_op = dict(HARDWARE_OPS)

__all__ = ["HardwareOp", "unit_of", "custom_op", "HARDWARE_OPS", "COMPUTE_OPS", "PLUMBING_OPS", "FOLDING"]

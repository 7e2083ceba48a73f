"""hwgen: binary neural networks from Brevitas/QONNX to bit-exact streaming FPGA accelerators.

    import hwgen
    b = hwgen.build("model.onnx", "build/model", target_fps=3000)   # a `hwgen.Build`
    b.sim(x); b.verify(x, labels); b.synth(); b.show()
    hwgen.export(brevitas_module).save("model.onnx")                # QONNX of a Brevitas module

(`hwgen.api`; the command line is `hwgen.cli`.)
"""

from __future__ import annotations

from typing import Any

from hwgen.errors import HwgenError

__all__ = ["Build", "HwgenError", "build", "export"]


def __getattr__(name: str) -> Any:
    """`build`, `Build` and `export` from `hwgen.api`, imported when first used: the command line
    and the driver-side modules import `hwgen` without needing QONNX."""
    if name in ("build", "Build", "export"):
        from hwgen import api

        return getattr(api, name)
    raise AttributeError(f"module 'hwgen' has no attribute {name!r}")

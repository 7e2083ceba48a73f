"""Shared pytest fixtures."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def verilator_cache() -> Path:
    """Build cache for Verilator executables, shared by all tests and kept between runs.

    Entries are keyed on a hash of everything that goes into a build, so a stale hit is not
    possible; keeping the folder across sessions saves the one-off runtime compile (~10 s) and
    every unchanged design's build.
    """
    path = Path(tempfile.gettempdir()) / "hwgen-test-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`, where the real data sets lie; tests that need it skip without it."""
    from hwgen.models.data import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_mlp_onnx(tmp_path_factory) -> Path:
    """A small random BNN MLP (784-32-16-10, uint8 input, binary inside) exported to QONNX."""
    from hwgen.frontend import export_brevitas
    from hwgen.models.mlp import BnnMlp, randomize

    path = tmp_path_factory.mktemp("tiny") / "mlp.onnx"
    export_brevitas(randomize(BnnMlp(hidden=(32, 16)), seed=0), (1, 1, 28, 28)).save(str(path))
    return path


@pytest.fixture(scope="session")
def synthesized_mlp(tmp_path_factory, tiny_mlp_onnx) -> tuple[Path, dict]:
    """The tiny MLP built with the default folding and synthesized for the xc7z020 (Yosys, each
    unit and the top): (build folder, report). Shared by the tests of synthesis and of the report
    page; a test that changes the folder works on a copy."""
    from hwgen.builder import build
    from hwgen.config import BuildConfig
    from hwgen.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "out"
    build(tiny_mlp_onnx, out, BuildConfig())
    return out, synthesize(out, jobs=2)


@pytest.fixture
def check_unit(verilator_cache):
    """Run a unit's Verilog in Verilator against its numpy reference: bit-exact without and with
    random stalls on every stream, and exactly `est_cycles()` per frame without stalls. `frames`
    is one array, or a tuple of arrays for a unit with several input streams."""
    import numpy as np

    from hwgen.sim import simulate_unit

    def check(unit, frames, seed: int = 5) -> None:
        inputs = frames if isinstance(frames, tuple) else (frames,)
        expected = unit.reference(*inputs)
        expected = expected if isinstance(expected, tuple) else (expected,)
        for stall_prob in (0.0, 0.3):
            got, result = simulate_unit(unit, *inputs, stall_prob=stall_prob, seed=seed,
                                        cache_dir=verilator_cache)
            got = got if isinstance(got, tuple) else (got,)
            for port, (g, e) in enumerate(zip(got, expected)):
                np.testing.assert_array_equal(g, e, err_msg=f"output {port}, stall_prob={stall_prob}")
            if stall_prob == 0.0:
                assert result.cycles_per_frame == unit.est_cycles()

    return check

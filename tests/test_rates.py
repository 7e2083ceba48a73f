"""Full rate at every folding target: without stalls, a design runs exactly at its slowest unit's
estimated cycles per frame, from the fastest folding the units allow to slow ones, with its FIFOs
measured or modelled.

What this guards: units of equal rate whose beats come unevenly (a pool sends a row of results on
the last row of its windows, a window maximum a window's result at its last position) stall each
other through depth-2 FIFOs: a ReActNet reduction block built for 400 cycles per frame ran at 545,
the small Bi-Real-18 at 19,968 against 18,432. The default run sweeps that reduction block and a
Bi-Real block; `-m slow` every family block and the zoo's small configs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.models.blocks import (
    BiRealBlock, BiRealDownsampleBlock, BlockNet, DenseLayer, DenseTransition, ReActNetBlock, randomize_block,
)
from hwgen.models.zoo import export
from hwgen.simulate import simulate_build

#: blocks as the issue found them (the reduction block: 16 channels at 10x10, stride 2) and the
#: families' other blocks at the width of the block tests
BLOCKS = {
    "reactnet_reduction": (lambda: ReActNetBlock(16, 32, 2), 16, 10),
    "reactnet_normal": (lambda: ReActNetBlock(8, 8, 1), 8, 8),
    "bireal": (lambda: BiRealBlock(8), 8, 8),
    "bireal_downsample": (lambda: BiRealDownsampleBlock(8, 16), 8, 8),
    "dense_layer": (lambda: DenseLayer(8, 8), 8, 8),
    "dense_transition": (lambda: DenseTransition(16, 8), 16, 8),
}
FAST = [("reactnet_reduction", 1, "measured"), ("reactnet_reduction", 400, "measured"),
        ("reactnet_reduction", 400, "modelled"), ("bireal", 1, "modelled")]
SLOW = [(name, target, sizing) for name in BLOCKS for target in (1, 100, 400, 2048)
        for sizing in ("measured", "modelled") if (name, target, sizing) not in FAST]


def stall_free_cycles(path: Path, out: Path, target: int, sizing: str, cache: Path, frames: int = 6) -> tuple[float, int]:
    """(rtlsim's stall-free cycles per frame, the slowest unit's estimate) of `path` built for
    `target` cycles per frame."""
    report = build(path, out, BuildConfig(target_cycles=target, fifo_sizing=sizing, cache_dir=cache))
    from qonnx.core.modelwrapper import ModelWrapper

    given = ModelWrapper(str(out / "graphs" / "00_input.onnx"))
    shape = given.get_tensor_shape(given.graph.input[0].name)
    x = np.random.default_rng(7).random((frames, *shape[1:])).astype(np.float32)
    _, stats = simulate_build(out, x, cache_dir=cache)
    return stats["cycles_per_frame"], report["totals"]["max_est_cycles"]


def block_file(name: str, folder: Path) -> Path:
    make, channels, size = BLOCKS[name]
    net = randomize_block(BlockNet(make(), channels, size), seed=0)
    path = folder / f"{name}.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    return path


@pytest.mark.parametrize("name, target, sizing", [
    *FAST, *(pytest.param(*case, marks=pytest.mark.slow) for case in SLOW)],
    ids=lambda v: str(v))
def test_block_runs_at_its_slowest_unit(name, target, sizing, tmp_path, verilator_cache):
    cycles, slowest = stall_free_cycles(block_file(name, tmp_path), tmp_path / "build", target, sizing,
                                        verilator_cache)
    assert cycles == slowest


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reactnet-a", "bireal-18", "binarydensenet-28", "abcnet-18-m1n1", "abcnet-18-m3n3"])
@pytest.mark.parametrize("target", [1, 20_000])
def test_zoo_small_config_runs_at_its_slowest_unit(name, target, tmp_path, verilator_cache):
    path = export(name, tmp_path / f"{name}.onnx", "small", seed=0)
    cycles, slowest = stall_free_cycles(path, tmp_path / "build", target, "auto", verilator_cache, frames=4)
    assert cycles == slowest

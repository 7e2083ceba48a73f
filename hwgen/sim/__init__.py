"""Cycle-accurate simulation of generated RTL in Verilator (see `hwgen.sim.verilator`)."""

from hwgen.sim.stimulus import random_frames
from hwgen.sim.verilator import (
    BuildError,
    SimResult,
    SimulationError,
    build,
    build_unit,
    build_verilog,
    run,
    simulate_unit,
)

__all__ = [
    "BuildError",
    "SimResult",
    "SimulationError",
    "build",
    "build_unit",
    "build_verilog",
    "random_frames",
    "run",
    "simulate_unit",
]

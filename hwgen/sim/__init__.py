"""Cycle-accurate simulation of generated RTL in Verilator (see `hwgen.sim.verilator`)."""

from hwgen.sim.stimulus import random_frames
from hwgen.sim.verilator import (
    BuildError,
    DeadlockError,
    SimResult,
    SimulationError,
    build,
    build_unit,
    build_verilog,
    run,
    run_streams,
    simulate_unit,
)

__all__ = [
    "BuildError",
    "DeadlockError",
    "SimResult",
    "SimulationError",
    "build",
    "build_unit",
    "build_verilog",
    "random_frames",
    "run",
    "run_streams",
    "simulate_unit",
]

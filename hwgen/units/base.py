"""What every hardware unit provides, so that lowering, folding, stitching and reports can treat
units alike without knowing their insides.

A unit is a frozen dataclass of its parameters (checked in `__post_init__`, raising `HwgenError`
naming the parameter) that also knows:

- its stream interface (`inputs`, `outputs`: one `StreamSpec` per port), from which stitching
  derives widths and frame lengths;
- `reference(*frames)`: a numpy model of one batch of frames, on the integer *values* of the
  stream datatypes (not wire codes), each input of shape (N, elements per frame) in stream order;
- `component()`: the Amaranth `wiring.Component` with stream ports named `inp` and `out` (units with
  several ports use `inp0`, `inp1`, ... / `out0`, `out1`, ...), payload = one beat as
  `unsigned(StreamSpec.width)`, element `i` at bits `[i*w, (i+1)*w)` (see `hwgen.streams`);
- estimates: `est_cycles()` (cycles per frame in steady state, no stalls), `est_luts()`,
  `est_brams()` (18 Kb block RAMs), `est_dsps()` (DSP48 slices).
"""

from __future__ import annotations

import dataclasses
import math

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from amaranth import unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from qonnx.core.datatype import BaseDataType

from hwgen.rtl.axi import BURST_BOUNDARY


@dataclass(frozen=True)
class StreamSpec:
    """One stream port: the datatype of its elements and how a frame is cut into beats."""

    dtype: BaseDataType
    elems_per_beat: int
    beats_per_frame: int

    @property
    def elem_bits(self) -> int:
        return self.dtype.bitwidth()

    @property
    def width(self) -> int:
        """Payload bits of one beat."""
        return self.elem_bits * self.elems_per_beat

    @property
    def elems_per_frame(self) -> int:
        return self.elems_per_beat * self.beats_per_frame


class Unit(ABC):
    """Base of all hardware units (subclasses are frozen dataclasses).

    Two class attributes tell the rest of hwgen what kind of unit it is, so that no op list is
    written anywhere else (`hwgen.ops.kinds` derives the registry from them):

    - `FOLDING`: the folding knobs and the dimension each must divide, e.g.
      `(("PE", "MH"), ("SIMD", "MW"))`; empty for units that are not folded;
    - `PLUMBING`: True for units that only move a stream (FIFOs, width converters, fan-out),
      which lowering never makes from a layer of the model.
    """

    FOLDING: tuple[tuple[str, str], ...] = ()
    PLUMBING: bool = False

    @classmethod
    def stream_counts(cls, attrs: Mapping[str, object]) -> tuple[int, int]:
        """How many input and output streams a unit with these parameters has (before it exists:
        a graph node's first inputs are its streams, the arrays come after them)."""
        return 1, 1

    @property
    @abstractmethod
    def inputs(self) -> tuple[StreamSpec, ...]: ...

    @property
    @abstractmethod
    def outputs(self) -> tuple[StreamSpec, ...]: ...

    @abstractmethod
    def reference(self, *frames: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def component(self) -> wiring.Component: ...

    @abstractmethod
    def est_cycles(self) -> int: ...

    @abstractmethod
    def est_luts(self) -> int: ...

    @abstractmethod
    def est_brams(self) -> int: ...

    def est_dsps(self) -> int:
        """DSP slices (DSP48): none, unless the unit multiplies multi-bit operands."""
        return 0

    def folding_space(self) -> list[dict[str, int]]:
        """Every folding the unit can take: each `FOLDING` knob a divisor of its dimension (of
        every dimension, for a list: a concatenation's inputs). A unit whose knobs constrain each
        other (a window generator's MMV) lists its own."""
        combos: list[dict[str, int]] = [{}]
        for knob, dim in self.FOLDING:
            combos = [{**c, knob: d} for c in combos for d in divisors(getattr(self, dim))]
        return combos

    def refolded(self, **knobs: int) -> "Unit":
        """The same unit with other folding knobs (`FOLDING`'s names): what automatic folding
        tries for every divisor pair. Checked as a new unit is; a unit whose arrays are large and
        whose checks do not depend on folding overrides it to skip them."""
        return dataclasses.replace(self, **knobs)

    def parameter_memories(self) -> list[tuple[int, int, str]]:
        """(depth, width, role) of each memory holding the model's parameters, role "weights",
        "thresholds" or "table": what a part's on-chip memory must hold (`hwgen.fit`). A unit
        without parameters has none."""
        return []

    def ram_weight_memories(self) -> list[tuple[int, int]]:
        """(depth, width) of each weight memory held in block RAM or UltraRAM (not in LUTs): the
        memories a part's UltraRAM may take instead (`hwgen.fit.uram_choice`)."""
        return [(depth, width) for depth, width, role in self.parameter_memories() if role == "weights"]

    def weight_stream(self) -> np.ndarray | None:
        """The unit's share of the weight stream (uint8 (beats, 8), `hwgen.units.weight_stream`)
        when it loads its parameters after reset through a `wload` port; None for a unit whose
        parameters are in the bitstream."""
        return None

    def est_urams(self) -> int:
        """UltraRAMs (URAM288) the unit's memories take: none unless placed there."""
        return 0

    def dram_image_bytes(self) -> int:
        """Bytes of the unit's image in DRAM (its weights); none for a unit that reads no DRAM.
        A unit may read its image more than once a frame (`dram_bytes_per_frame`)."""
        return 0

    def dram_alignment(self) -> int:
        """The power of two of bytes that the DRAM base must be a multiple of for the unit's
        addresses: 4 KB, the page every image starts on (a ring in DRAM asks for its size)."""
        return BURST_BOUNDARY

    def dram_bytes_per_frame(self) -> int:
        """Bytes the unit reads from DRAM per frame (weights streamed from there): none for a
        unit whose parameters are on chip. With the frame rate, the DRAM bandwidth it needs
        (`hwgen.fit`)."""
        return 0

    def dram_writes(self) -> bool:
        """Whether the unit also writes DRAM (a FIFO spilled there: `hwgen.units.dram_fifo`), with
        the write half of an AXI4 master beside its read half."""
        return False

    def held_fraction(self) -> float:
        """The most of one input frame the unit takes in before it has given out what it owes
        for it (a window generator holds rows, a matrix-vector unit a vector or two): what a
        shortcut beside it must buffer, as a fraction of the frame (FIFO sizing by model). A
        unit that passes beats through holds its two pipeline registers."""
        return min(1.0, 2 / self.inputs[0].beats_per_frame)

    def least_held_fraction(self) -> float:
        """The least of one input frame the unit must take in before its first output beat (a
        window generator the first window's rows, a matrix-vector unit one vector): with
        `held_fraction` it brackets how far a path's output lags its input. A unit that passes
        beats through needs none."""
        return 0.0

    def output_burst(self) -> float:
        """The most beats the unit sends ahead of an even spread of its frame's output over its
        frame's cycles (a pool sends a row of results on the last image row of its windows, then
        nothing for the rows before the next): what the FIFO after it must hold so that a reader
        taking beats evenly at the same rate never stalls it. A unit that sends evenly: none."""
        return 0.0

    def turn_beats(self, stream: int) -> int:
        """The most beats the unit takes from its other inputs between two beats of input
        `stream` (a concat takes each part of a pixel in turn): what that input's FIFO holds
        while it waits. None for a unit that takes its inputs together."""
        return 0


def divisors(n: int | Sequence[int]) -> list[int]:
    """The divisors of n; of several dimensions (a concatenation's inputs), the common ones."""
    n = math.gcd(*n) if isinstance(n, (list, tuple)) else int(n)
    return [d for d in range(1, n + 1) if n % d == 0]


def stream_ports(in_width: int | Sequence[int], out_width: int | Sequence[int]) -> dict[str, wiring.Member]:
    """The stream ports of a unit component: `inp` / `out` for one stream each, `inp0, inp1, ...`
    / `out0, out1, ...` for several (a width per stream)."""
    ports: dict[str, wiring.Member] = {}
    for prefix, widths, direction in (("inp", in_width, In), ("out", out_width, Out)):
        widths = [widths] if isinstance(widths, int) else list(widths)
        names = [prefix] if len(widths) == 1 else [f"{prefix}{i}" for i in range(len(widths))]
        for name, width in zip(names, widths):
            ports[name] = direction(stream.Signature(unsigned(width)))
    return ports

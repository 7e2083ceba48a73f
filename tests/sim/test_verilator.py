"""The Verilator layer: Verilog emission, the AXI-Stream wrapper, the bench, the build cache."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from qonnx.core.datatype import BaseDataType, DataType

import hwgen.sim.verilator as vl
from hwgen.errors import HwgenError
from hwgen.rtl import AxisWrapper, to_verilog
from hwgen.sim import BuildError, SimulationError, build_unit, random_frames, run, simulate_unit
from hwgen.units.base import StreamSpec, Unit


class _Wire(wiring.Component):
    """Stream in, stream out, nothing in between (or, with `stuck`, never ready)."""

    def __init__(self, width: int, stuck: bool = False) -> None:
        self.stuck = stuck
        super().__init__(
            {"inp": In(stream.Signature(unsigned(width))), "out": Out(stream.Signature(unsigned(width)))}
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.d.comb += [
            self.out.payload.eq(self.inp.payload),
            self.out.valid.eq(self.inp.valid & ~self.stuck),
            self.inp.ready.eq(self.out.ready & ~self.stuck),
        ]
        return m


@dataclass(frozen=True)
class Passthrough(Unit):
    """Smallest possible unit, so these tests exercise packing and the bench, not a design."""

    dtype: BaseDataType
    elems_per_beat: int
    beats_per_frame: int
    stuck: bool = False

    @property
    def inputs(self) -> tuple[StreamSpec, ...]:
        return (StreamSpec(self.dtype, self.elems_per_beat, self.beats_per_frame),)

    @property
    def outputs(self) -> tuple[StreamSpec, ...]:
        return self.inputs

    def reference(self, *frames: np.ndarray) -> np.ndarray:
        return frames[0]

    def component(self) -> wiring.Component:
        return _Wire(self.inputs[0].width, self.stuck)

    def est_cycles(self) -> int:
        return self.beats_per_frame

    def est_luts(self) -> int:
        return 0

    def est_brams(self) -> int:
        return 0


# Beat widths 5 (CData), 12 (SData), 24 (IData), 64 (QData), 70 and 130 (VlWide): every port type
# the bench overloads on, and widths that are not whole bytes.
WIDTH_CASES = [
    ("BIPOLAR", 5),
    ("INT3", 4),
    ("UINT8", 3),
    ("INT4", 16),
    ("BIPOLAR", 70),
    ("INT5", 26),
]


@pytest.mark.parametrize(("dtype", "elems"), WIDTH_CASES)
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_packing_roundtrip(dtype: str, elems: int, stall: float, verilator_cache: Path) -> None:
    unit = Passthrough(DataType[dtype], elems, 3)
    frames = random_frames(unit.inputs[0], 5, seed=elems)
    out, res = simulate_unit(unit, frames, stall_prob=stall, seed=1, cache_dir=verilator_cache)
    np.testing.assert_array_equal(out, frames)
    assert res.frames == 5
    assert res.output.shape == (5, 3, (unit.inputs[0].width + 7) // 8)
    if stall == 0.0:
        # A wire: one beat per cycle, frame 0 done in its own 3 cycles.
        assert res.cycles_per_frame == 3.0
        assert res.latency_cycles == 3
        assert res.total_cycles == 15


def test_pad_bits_of_output_are_zero(verilator_cache: Path) -> None:
    unit = Passthrough(DataType["INT3"], 4, 2)  # 12 payload bits in 16
    exe = build_unit(unit, verilator_cache)
    beats = np.full((2, 2, 2), 0xFF, dtype=np.uint8)  # pad bits of the input set on purpose
    res = run(exe, beats, 2, 2)
    assert np.all(res.output[..., 0] == 0xFF)
    assert np.all(res.output[..., 1] == 0x0F)


def test_single_frame_period_is_latency(verilator_cache: Path) -> None:
    unit = Passthrough(DataType["UINT8"], 3, 4)
    _, res = simulate_unit(unit, random_frames(unit.inputs[0], 1), cache_dir=verilator_cache)
    assert res.cycles_per_frame == res.latency_cycles == 4


def test_stalls_are_seeded(verilator_cache: Path) -> None:
    unit = Passthrough(DataType["UINT8"], 3, 4)
    frames = random_frames(unit.inputs[0], 6)
    runs = [
        simulate_unit(unit, frames, stall_prob=0.5, seed=s, cache_dir=verilator_cache)[1]
        for s in (7, 7, 8)
    ]
    assert runs[0].total_cycles == runs[1].total_cycles
    np.testing.assert_array_equal(runs[0].last_out_cycles, runs[1].last_out_cycles)
    assert not np.array_equal(runs[0].last_out_cycles, runs[2].last_out_cycles)
    assert runs[0].total_cycles > 24  # stalls cost cycles


def test_cache_hit_on_second_build(verilator_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unit = Passthrough(DataType["INT4"], 2, 2)
    exe = build_unit(unit, verilator_cache)
    text = to_verilog(AxisWrapper(unit.component()), "cache_hit")
    first = vl.build_verilog({"cache_hit.v": text}, "cache_hit", verilator_cache)

    def no_tools(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached design was built again")

    monkeypatch.setattr(vl, "_run_tool", no_tools)
    start = time.monotonic()
    assert vl.build_verilog({"cache_hit.v": text}, "cache_hit", verilator_cache) == first
    assert time.monotonic() - start < 0.5
    # Different RTL (another top name) must not hit the same entry.
    assert first.parent != exe.parent
    assert first.parent.parent == verilator_cache


def test_build_from_folder(verilator_cache: Path, tmp_path: Path) -> None:
    unit = Passthrough(DataType["INT4"], 2, 2)
    (tmp_path / "top.v").write_text(to_verilog(AxisWrapper(unit.component()), "folder_top"))
    exe = vl.build(tmp_path, "folder_top", verilator_cache)
    beats = np.arange(8, dtype=np.uint8).reshape(2, 4, 1)
    np.testing.assert_array_equal(run(exe, beats, 4, 1).output, beats)


def test_failed_build_leaves_no_cache_entry(tmp_path: Path) -> None:
    broken = "module broken(input ap_clk);\n  this is not verilog\nendmodule\n"
    with pytest.raises(BuildError, match="verilator failed"):
        vl.build_verilog({"broken.v": broken}, "broken", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_deadlock_is_reported(verilator_cache: Path) -> None:
    unit = Passthrough(DataType["UINT8"], 1, 4, stuck=True)
    with pytest.raises(SimulationError, match=r"deadlock: no handshake for 500 cycles.*0/8 input"):
        simulate_unit(unit, random_frames(unit.inputs[0], 2), cache_dir=verilator_cache, max_idle=500)


def test_surplus_output_is_reported(verilator_cache: Path) -> None:
    exe = build_unit(Passthrough(DataType["UINT8"], 1, 4), verilator_cache)
    beats = np.zeros((2, 4, 1), dtype=np.uint8)
    with pytest.raises(SimulationError, match="beyond the expected count"):
        run(exe, beats, 2, 1)  # the design really gives 4 beats per frame


def test_run_rejects_bad_arguments(verilator_cache: Path) -> None:
    exe = build_unit(Passthrough(DataType["UINT8"], 1, 4), verilator_cache)
    with pytest.raises(HwgenError, match="uint8"):
        run(exe, np.zeros((1, 4, 1), dtype=np.int32), 4, 1)
    with pytest.raises(HwgenError, match="stall_prob"):
        run(exe, np.zeros((1, 4, 1), dtype=np.uint8), 4, 1, stall_prob=1.0)
    with pytest.raises(HwgenError, match=r"shape \(N, 4\)"):
        simulate_unit(Passthrough(DataType["UINT8"], 1, 4), np.zeros((2, 3)), cache_dir=verilator_cache)


def test_to_verilog_is_deterministic_and_path_free() -> None:
    texts = [to_verilog(AxisWrapper(_Wire(12)), "det") for _ in range(2)]
    assert texts[0] == texts[1]
    assert str(Path(__file__).parent.parent.parent) not in texts[0]
    assert "src =" not in texts[0]


def test_wrapper_ports_follow_the_contract() -> None:
    text = to_verilog(AxisWrapper(_Wire(12)), "ports")
    header = re.search(r"^module ports\((.*?)\);", text, re.MULTILINE | re.DOTALL)
    assert header is not None
    ports = {p.strip() for p in header.group(1).split(",")}
    assert ports == {
        "ap_clk",
        "ap_rst_n",
        "s_axis_tdata",
        "s_axis_tvalid",
        "s_axis_tready",
        "m_axis_tdata",
        "m_axis_tvalid",
        "m_axis_tready",
    }
    assert re.search(r"input \[15:0\] s_axis_tdata;", text)
    assert re.search(r"output \[15:0\] m_axis_tdata;", text)

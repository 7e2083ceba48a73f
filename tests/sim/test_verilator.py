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
    unit = Passthrough(DataType["INT3"], 4, 3)  # 12 payload bits in 16
    exe = build_unit(unit, verilator_cache)
    beats = np.full((2, 3, 2), 0xFF, dtype=np.uint8)  # pad bits of the input set on purpose
    res = run(exe, beats, 3, 2)
    assert np.all(res.output[..., 0] == 0xFF)
    assert np.all(res.output[..., 1] == 0x0F)


def test_single_frame_period_is_latency(verilator_cache: Path) -> None:
    unit = Passthrough(DataType["UINT8"], 3, 3)
    _, res = simulate_unit(unit, random_frames(unit.inputs[0], 1), cache_dir=verilator_cache)
    assert res.cycles_per_frame == res.latency_cycles == 3


def test_stalls_are_seeded(verilator_cache: Path) -> None:
    unit = Passthrough(DataType["UINT8"], 3, 3)
    frames = random_frames(unit.inputs[0], 6)
    runs = [
        simulate_unit(unit, frames, stall_prob=0.5, seed=s, cache_dir=verilator_cache)[1]
        for s in (7, 7, 8)
    ]
    assert runs[0].total_cycles == runs[1].total_cycles
    np.testing.assert_array_equal(runs[0].last_out_cycles, runs[1].last_out_cycles)
    assert not np.array_equal(runs[0].last_out_cycles, runs[2].last_out_cycles)
    assert runs[0].total_cycles > 18  # stalls cost cycles


def _passthrough_verilog() -> tuple[Passthrough, str, str]:
    """A unit of WIDTH_CASES and the exact Verilog `build_unit` makes of it (same cache entry)."""
    unit = Passthrough(DataType["INT4"], 16, 3)
    name = vl._module_name(unit)
    return unit, name, to_verilog(AxisWrapper(unit.component()), name)


def test_cache_hit_on_second_build(verilator_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unit, name, text = _passthrough_verilog()
    exe = build_unit(unit, verilator_cache)
    assert exe.parent.parent == verilator_cache

    def no_tools(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached design was built again")

    monkeypatch.setattr(vl, "_run_tool", no_tools)
    start = time.monotonic()
    assert vl.build_verilog({f"{name}.v": text}, name, verilator_cache) == exe
    assert time.monotonic() - start < 0.5
    # Any change to the RTL is a different design.
    with pytest.raises(AssertionError, match="built again"):
        vl.build_verilog({f"{name}.v": text + "\n"}, name, verilator_cache)


def test_build_from_folder(verilator_cache: Path, tmp_path: Path) -> None:
    unit, name, text = _passthrough_verilog()
    (tmp_path / f"{name}.v").write_text(text)
    (tmp_path / "notes.txt").write_text("not Verilog, not read")
    exe = vl.build(tmp_path, name, verilator_cache)
    assert exe == build_unit(unit, verilator_cache)
    beats = np.arange(2 * 3 * 8, dtype=np.uint8).reshape(2, 3, 8)
    np.testing.assert_array_equal(run(exe, beats, 3, 8).output, beats)


def test_failed_build_leaves_no_cache_entry(tmp_path: Path) -> None:
    broken = "module broken(input ap_clk);\n  this is not verilog\nendmodule\n"
    with pytest.raises(BuildError, match="verilator failed on design broken") as info:
        vl.build_verilog({"broken.v": broken}, "broken", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["failed"]  # only the kept log, no cache entry
    assert Path(info.value.log).is_file() and "this is not verilog" in Path(info.value.log).read_text()


def test_deadlock_is_reported(verilator_cache: Path) -> None:
    unit = Passthrough(DataType["UINT8"], 1, 4, stuck=True)
    with pytest.raises(SimulationError, match=r"deadlock: no handshake for 500 cycles.*s_axis 0/8") as info:
        simulate_unit(unit, random_frames(unit.inputs[0], 2), cache_dir=verilator_cache, max_idle=500)
    assert info.value.full == ["s_axis"] and info.value.waiting == ["m_axis"]


def test_surplus_output_is_reported(verilator_cache: Path) -> None:
    exe = build_unit(Passthrough(DataType["UINT8"], 3, 3), verilator_cache)
    beats = np.zeros((2, 3, 3), dtype=np.uint8)
    with pytest.raises(SimulationError, match="beyond the expected count"):
        run(exe, beats, 2, 3)  # the design really gives 3 beats per frame


def test_run_rejects_bad_arguments(verilator_cache: Path) -> None:
    unit = Passthrough(DataType["UINT8"], 3, 3)
    exe = build_unit(unit, verilator_cache)
    with pytest.raises(HwgenError, match="uint8"):
        run(exe, np.zeros((1, 3, 3), dtype=np.int32), 3, 3)
    with pytest.raises(HwgenError, match="stall_prob"):
        run(exe, np.zeros((1, 3, 3), dtype=np.uint8), 3, 3, stall_prob=1.0)
    with pytest.raises(SimulationError, match="exceed s_axis_tdata"):
        run(exe, np.zeros((1, 3, 5), dtype=np.uint8), 3, 3)
    with pytest.raises(HwgenError, match=r"shape \(N, 9\)"):
        simulate_unit(unit, np.zeros((2, 3)), cache_dir=verilator_cache)


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


@pytest.mark.slow
def test_split_model_builds_without_the_shared_precompiled_header(
    verilator_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Large designs are split into many C++ files, which Verilator compiles with its own
    # precompiled header; ours must then stay out of the way. Slow: other flags mean another
    # runtime to compile.
    monkeypatch.setattr(vl, "VERILATOR_FLAGS", (*vl.VERILATOR_FLAGS, "--output-split", "1"))
    monkeypatch.setattr(vl, "_built_units", {})
    # The first design may compile the runtime; the second then links the cached one.
    for beats in (3, 4):
        unit = Passthrough(DataType["INT5"], 26, beats)
        frames = random_frames(unit.inputs[0], 3)
        out, _ = simulate_unit(unit, frames, cache_dir=verilator_cache)
        np.testing.assert_array_equal(out, frames)
    log = (build_unit(unit, verilator_cache).parent / "build.log").read_text()
    assert "-include Vtop__pch.h.fast" in log
    assert "-include " + str(verilator_cache) not in log

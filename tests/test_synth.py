"""Yosys synthesis of a build: resource counts in report.json, per unit and for the whole design,
block RAM where the resource model puts a ROM, the same cells from RTLIL as from Verilog, and the
CLI's errors."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from hwgen.cli import main
from hwgen.errors import HwgenError
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.emit import MEMINIT_CHUNK_BITS, to_rtlil, to_verilog, to_verilog_and_rtlil
from hwgen.synth import PARTS, _sources, count_resources, lookup_part
from hwgen.synth.yosys import SynthRun, find_yosys, verilog_for_synthesis
from hwgen.units.datapath import in_bram
from hwgen.units.fifo import StreamingFifo

RESOURCES = ("luts", "ffs", "bram18", "bram36", "dsp", "uram")


@pytest.fixture(scope="module")
def synthesized(synthesized_mlp):
    """The tiny MLP (784-32-16-10), built with the default folding and synthesized for xc7z020."""
    return synthesized_mlp


def test_report_has_synthesis_numbers(synthesized):
    out, report = synthesized
    assert json.loads((out / "report.json").read_text()) == report
    total = report["synth"]
    assert set(total) == {"part", *RESOURCES, "fits", "logic_levels"}
    assert total["part"] == "xc7z020clg400-1"
    for layer in report["layers"]:
        assert set(layer["synth"]) == {*RESOURCES, "logic_levels"}, layer["name"]
        assert layer["synth"]["logic_levels"] >= 1, layer["name"]
    assert total["logic_levels"] == max(layer["synth"]["logic_levels"] for layer in report["layers"])
    for entry in [total] + [layer["synth"] for layer in report["layers"]]:
        for key in RESOURCES:
            assert isinstance(entry[key], int) and entry[key] >= 0, (key, entry)
    assert total["luts"] > 0 and total["ffs"] > 0
    assert total["fits"] is True
    for layer in report["layers"]:
        if layer["op"] == "MVU":
            assert layer["synth"]["luts"] > 0 and layer["synth"]["ffs"] > 0, layer["name"]
    logs = {p.name for p in (out / "synth").iterdir()}
    assert {"hwgen_accel.log", "hwgen_accel.ys", "hwgen_accel.stat.json", "summary.json"} <= logs


def test_units_add_up_to_the_whole(synthesized):
    """Synthesis is hierarchical: the whole is the top's own cells (it only wires the units, the
    reset inverter aside) plus the units'."""
    out, report = synthesized
    total = report["synth"]
    top = json.loads((out / "synth" / "summary.json").read_text())["modules"]["hwgen_accel"]
    assert top["luts"] <= 2 and top["ffs"] == 0 and top["bram18"] + top["bram36"] + top["dsp"] == 0, top
    for key in RESOURCES:
        assert total[key] == top[key] + sum(layer["synth"][key] for layer in report["layers"]), key


def test_large_weight_rom_goes_to_block_ram(synthesized):
    _, report = synthesized
    big = [layer for layer in report["layers"] if layer["op"] == "MVU"
           and in_bram((layer["MH"] // layer["PE"]) * (layer["MW"] // layer["SIMD"]), layer["PE"] * layer["SIMD"])]
    assert big, "the tiny MLP's first layer should have a weight ROM above the LUTRAM threshold"
    for layer in big:
        assert layer["synth"]["bram18"] + layer["synth"]["bram36"] > 0, layer


def test_rtlil_beside_every_verilog_file(synthesized):
    """RTLIL is written beside the Verilog, without source paths; synthesis starts from it."""
    out, _ = synthesized
    verilog = sorted(p.stem for p in (out / "rtl").glob("*.v"))
    assert verilog == sorted(p.stem for p in (out / "rtl").glob("*.il"))
    for stem in verilog:
        text = (out / "rtl" / f"{stem}.il").read_text()
        assert f"module \\{stem}\n" in text and "attribute \\src" not in text, stem
    assert sorted(p.stem for p in (out / "synth" / "rtl").glob("*.v")) == verilog
    top = (out / "synth" / "hwgen_accel.ys").read_text().splitlines()
    units = " ".join(f"synth/rtl/{stem}.v" for stem in verilog if stem != "hwgen_accel")
    assert top[:2] == ["read_verilog synth/rtl/hwgen_accel.v", f"read_verilog -lib {units}"]


def test_one_elaboration_gives_both_texts():
    unit = StreamingFifo(DataType["INT3"], 5, 4, 32)
    both = to_verilog_and_rtlil(unit.component(), "m")
    assert both == (to_verilog(unit.component(), "m"), to_rtlil(unit.component(), "m"))


class _Rom(wiring.Component):
    """A ROM of `width` x `depth` with `init`, read at `addr` (one read port)."""

    def __init__(self, width: int, depth: int, init: list[int]) -> None:
        self._shape = (width, depth, init)
        super().__init__({"addr": In(max(1, (depth - 1).bit_length())), "data": Out(width)})

    def elaborate(self, platform):
        m = Module()
        width, depth, init = self._shape
        m.submodules.rom = rom = memory.Memory(shape=width, depth=depth, init=init)
        port = rom.read_port()
        m.d.comb += [port.addr.eq(self.addr), self.data.eq(port.data)]
        return m


def _rom(width: int, depth: int) -> _Rom:
    rng = np.random.default_rng(width * 1000 + depth)
    init = [int(rng.integers(0, 2 ** min(width, 62))) << max(0, width - 62) for _ in range(depth)]
    init[0] = (1 << width) - 1  # the top bit set
    init[-1] = 0
    return _Rom(width, depth, init)


@pytest.mark.parametrize("width, depth", [(1, 1), (1, 37), (7, 5), (64, 64), (130, 17)])
def test_memory_contents_written_as_amaranth_writes_them(width, depth):
    """hwgen writes a memory's contents into RTLIL from the words at once (`hwgen.rtl.emit`): up to
    `MEMINIT_CHUNK_BITS` the text is Amaranth's own, character for character."""
    assert width * depth <= MEMINIT_CHUNK_BITS
    ours = to_rtlil(_rom(width, depth), "m")
    assert ours == rtlil.convert(_rom(width, depth), name="m", emit_src=False)
    assert "$meminit_v2" in ours


@pytest.mark.parametrize("width, depth", [(64, 65), (100, 1000), (4097, 3)])
def test_long_memory_contents_give_amaranths_verilog(width, depth):
    """Longer contents are a concatenation of short constants (which Yosys reads in linear time);
    the Verilog made of them is the one Amaranth's own RTLIL gives."""
    ours = to_rtlil(_rom(width, depth), "m")
    assert ours != rtlil.convert(_rom(width, depth), name="m", emit_src=False)
    assert to_verilog_and_rtlil(_rom(width, depth), "m")[0] == to_verilog(_rom(width, depth), "m")


_INLINE_MEMORY = re.compile(r"  initial begin\n((?:    (\S+ ?)\[\d+\] = \d+'h[0-9a-f]+;\n)+)  end\n")
_WORD = re.compile(r"'h([0-9a-f]+);")


def test_synthesis_reads_the_simulated_verilog(synthesized):
    """What synthesis reads, `synth/rtl/<module>.v`, is the Verilog that Verilator simulates but for
    the memory contents: one `$readmemb` of a `.mem` file holding the very same words instead of
    one statement per word. Lines are compared as a multiset: Yosys may write a continuous
    assignment at another place when the memory is external (a Verilog `assign` means the same
    wherever it stands), and every statement must still be there exactly."""
    out, _ = synthesized
    memories = 0
    for path in sorted((out / "rtl").glob("*.v")):
        module = path.stem
        blocks = list(_INLINE_MEMORY.finditer(path.read_text()))
        expected = path.read_text()
        for n, block in reversed(list(enumerate(blocks, start=1))):
            mem = f"synth/rtl/{module}-{n}.mem"
            read = f'  initial $readmemb("{mem}", {block[2]});\n'
            expected = expected[:block.start()] + read + expected[block.end():]
            words = [int(w, 16) for w in _WORD.findall(block[1])]
            assert [int(line, 2) for line in (out / mem).read_text().split()] == words, mem
        memories += len(blocks)
        text = (out / "synth" / "rtl" / f"{module}.v").read_text()
        assert sorted(text.split("\n")[1:]) == sorted(expected.split("\n")), module  # after Yosys's banner line
    assert memories >= 3  # the weight and threshold ROMs of MVUs, FIFO buffers


def test_rtlil_gives_the_cells_of_the_verilog(synthesized, tmp_path):
    """A unit with weight and threshold ROMs, synthesized from `rtl/<module>.v` as it is, has the
    cells that the synthesis from its RTLIL found: the same memories, flip-flops and carry cells,
    and LUTs (with their wide muxes) within a few (the two texts name the popcount's counter signals differently, and
    Yosys's LUT mapping is not blind to names)."""
    out, report = synthesized
    last_mvu = [layer for layer in report["layers"] if layer["op"] == "MVU"][-1]
    module = f"hwgen_accel_{last_mvu['name']}"
    shutil.copytree(out / "rtl", tmp_path / "rtl")
    (tmp_path / "synth").mkdir()
    from_verilog = SynthRun(module, (f"rtl/{module}.v",)).run(find_yosys(), tmp_path, "xc7")
    from_rtlil = json.loads((out / "synth" / "summary.json").read_text())["modules"][module]
    luts = {k for k in (*from_verilog["cells"], *from_rtlil["cells"]) if k.startswith(("LUT", "MUXF")) or k == "INV"}
    assert ({k: v for k, v in from_verilog["cells"].items() if k not in luts}
            == {k: v for k, v in from_rtlil["cells"].items() if k not in luts})
    assert abs(from_verilog["luts"] - from_rtlil["luts"]) <= max(4, 0.03 * from_rtlil["luts"])


def test_build_without_rtlil_synthesizes_its_verilog(synthesized, tmp_path):
    out, report = synthesized
    shutil.copytree(out / "rtl", tmp_path / "rtl")
    accelerator = json.loads((out / "accelerator.json").read_text())
    sources, layer_module = _sources(tmp_path, report, accelerator)
    assert set(sources) == {"hwgen_accel", *layer_module.values()}
    assert all(f == f"rtl/{m}.il" for m, f in sources.items())
    for path in (tmp_path / "rtl").glob("*.il"):
        path.unlink()
    sources, _ = _sources(tmp_path, report, accelerator)
    assert all(f == f"rtl/{m}.v" and verilog_for_synthesis(tmp_path, f) == f for m, f in sources.items())
    assert not (tmp_path / "synth").exists()


def test_count_resources_counts_lut_sites():
    cells = {"LUT1": 1, "LUT6": 2, "INV": 3, "RAM32M": 2, "RAM64X1D": 1, "SRLC32E": 1, "CARRY4": 5,
             "MUXF7": 4, "FDRE": 7, "FDCE": 1, "RAMB18E1": 2, "RAMB36E2": 1, "DSP48E1": 3, "URAM288": 2}
    assert count_resources(cells) == {"luts": 1 + 2 + 3 + 8 + 2 + 1, "ffs": 8, "bram18": 2, "bram36": 1, "dsp": 3,
                                      "uram": 2}


def test_part_names():
    assert lookup_part("xc7z020clg400-1") is PARTS["xc7z020"]
    assert lookup_part("xczu3eg-sbva484-1-i").family == "xcup"
    assert lookup_part("XC7Z010") is PARTS["xc7z010"]
    assert lookup_part("xck26-sfvc784-2LV-c") is PARTS["xck26"] and PARTS["xck26"].uram == 64
    with pytest.raises(HwgenError, match="known devices: xc7z010, xc7z020, xck26, xczu3eg, xczu7ev"):
        lookup_part("xc7z0201")
    z020 = PARTS["xc7z020"]
    assert z020.fits(luts=53_200, ffs=106_400, bram18=2, bram36=139, dsp=220)
    assert not z020.fits(luts=1, ffs=1, bram18=3, bram36=139, dsp=0)


def _cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip()


def test_cli_unknown_part(synthesized, capsys):
    out, _ = synthesized
    code, err = _cli(capsys, "synth", out, "--part", "xc7a35tcpg236-1")
    assert code == 2 and len(err.splitlines()) == 1 and "xc7z020" in err and "xczu7ev" in err


def test_cli_folder_without_report(tmp_path, capsys):
    code, err = _cli(capsys, "synth", tmp_path)
    assert code == 2 and len(err.splitlines()) == 1 and "report.json" in err


def test_cli_yosys_not_found(synthesized, tmp_path, capsys, monkeypatch):
    out, _ = synthesized
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    monkeypatch.setattr("hwgen.synth.yosys.sys.executable", str(tmp_path / "no-venv" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, err = _cli(capsys, "synth", copy)
    assert code == 2 and len(err.splitlines()) == 1 and "yosys" in err
    assert json.loads((copy / "report.json").read_text()) == json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_cli_board_selects_its_part(synthesized, tmp_path, capsys):
    """(slow: a second Yosys run, for UltraScale+; the default run synthesizes for the xc7z020)"""
    out, _ = synthesized
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert main(["synth", str(copy), "--board", "kv260"]) == 0
    report = json.loads((copy / "report.json").read_text())
    assert report["synth"]["part"] == "xck26-sfvc784-2LV-c" and report["synth"]["fits"]
    summary = json.loads((copy / "synth" / "summary.json").read_text())
    assert summary["family"] == "xcup"  # UltraScale+ cells


def test_cli_unknown_board(synthesized, capsys):
    out, _ = synthesized
    code, err = _cli(capsys, "synth", out, "--board", "zybo")
    assert code == 2 and "unknown board 'zybo'" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:  # one or the other (argparse's usage error)
        main(["synth", str(out), "--board", "kv260", "--part", "xc7z020"])
    assert exit_info.value.code == 2

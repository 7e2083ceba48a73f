"""Yosys synthesis of a build: resource counts in report.json, per unit and for the whole design,
block RAM where the resource model puts a ROM, and the CLI's errors."""

from __future__ import annotations

import json
import shutil

import pytest

from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.synth import PARTS, count_resources, lookup_part, synthesize
from hwgen.units.datapath import in_bram

RESOURCES = ("luts", "ffs", "bram18", "bram36", "dsp")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory, tiny_mlp_onnx):
    """The tiny MLP (784-32-16-10), built with the default folding and synthesized for xc7z020."""
    from hwgen.build import build
    from hwgen.config import BuildConfig

    out = tmp_path_factory.mktemp("synth") / "out"
    build(tiny_mlp_onnx, out, BuildConfig())
    return out, synthesize(out, jobs=2)


def test_report_has_synthesis_numbers(synthesized):
    out, report = synthesized
    assert json.loads((out / "report.json").read_text()) == report
    total = report["synth"]
    assert set(total) == {"part", *RESOURCES, "fits"}
    assert total["part"] == "xc7z020clg400-1"
    for layer in report["layers"]:
        assert set(layer["synth"]) == set(RESOURCES), layer["name"]
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
    """The top level only wires units together; flattening may optimise a little across them."""
    _, report = synthesized
    total = report["synth"]
    for key in RESOURCES:
        parts = sum(layer["synth"][key] for layer in report["layers"])
        if key in ("luts", "ffs"):
            assert abs(parts - total[key]) <= 0.1 * total[key] + 10, (key, parts, total[key])
        else:
            assert parts == total[key], (key, parts, total[key])


def test_large_weight_rom_goes_to_block_ram(synthesized):
    _, report = synthesized
    big = [layer for layer in report["layers"] if layer["op"] == "MVU"
           and in_bram((layer["MH"] // layer["PE"]) * (layer["MW"] // layer["SIMD"]), layer["PE"] * layer["SIMD"])]
    assert big, "the tiny MLP's first layer should have a weight ROM above the LUTRAM threshold"
    for layer in big:
        assert layer["synth"]["bram18"] + layer["synth"]["bram36"] > 0, layer


def test_count_resources_counts_lut_sites():
    cells = {"LUT1": 1, "LUT6": 2, "INV": 3, "RAM32M": 2, "RAM64X1D": 1, "SRLC32E": 1, "CARRY4": 5,
             "MUXF7": 4, "FDRE": 7, "FDCE": 1, "RAMB18E1": 2, "RAMB36E2": 1, "DSP48E1": 3}
    assert count_resources(cells) == {"luts": 1 + 2 + 3 + 8 + 2 + 1, "ffs": 8, "bram18": 2, "bram36": 1, "dsp": 3}


def test_part_names():
    assert lookup_part("xc7z020clg400-1") is PARTS["xc7z020"]
    assert lookup_part("xczu3eg-sbva484-1-i").family == "xcup"
    assert lookup_part("XC7Z010") is PARTS["xc7z010"]
    with pytest.raises(HwgenError, match="known devices: xc7z010, xc7z020, xczu3eg, xczu7ev"):
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

"""`OUT/build.toml` holds the build's command-line options; `hwgen build --config OUT/build.toml`
builds the same accelerator: byte-identical RTL and the same report."""

from __future__ import annotations

import json

import pytest

from hwgen.cli import main


def rtl_files(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "rtl").iterdir())}


def test_config_reproduces_the_build(tiny_mlp_onnx, tmp_path, capsys, verilator_cache):
    folding = tmp_path / "fold.json"
    folding.write_text(json.dumps({"MVU_1": {"PE": 4}}))
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["build", str(tiny_mlp_onnx), "-o", str(first), "--target-cycles", "2048", "--clock-mhz", "150",
                 "--folding", str(folding), "--fifo-sizing", "modelled", "--cache-dir", str(verilator_cache)]) == 0
    toml = (first / "build.toml").read_text()
    assert 'folding = "folding_in.json"' in toml and "target_cycles = 2048" in toml and "clock_mhz = 150.0" in toml
    assert main(["build", str(tiny_mlp_onnx), "-o", str(second), "--config", str(first / "build.toml"),
                 "--cache-dir", str(verilator_cache)]) == 0
    assert rtl_files(first) == rtl_files(second)
    assert json.loads((first / "report.json").read_text()) == json.loads((second / "report.json").read_text())
    assert (second / "build.toml").read_text() == toml
    # a target on the command line replaces the file's
    third = tmp_path / "third"
    assert main(["build", str(tiny_mlp_onnx), "-o", str(third), "--config", str(first / "build.toml"),
                 "--target-fps", "1000", "--cache-dir", str(verilator_cache)]) == 0
    assert "target_fps = 1000.0" in (third / "build.toml").read_text()
    assert "target_cycles" not in (third / "build.toml").read_text()


def test_config_alone_rebuilds_its_model(tiny_mlp_onnx, tmp_path, capsys, verilator_cache):
    """build.toml names its model (relative to the file, with its sha256): `--config` alone
    rebuilds it; a changed model file is one error naming both hashes; a MODEL given wins."""
    import hashlib
    import shutil

    model = tmp_path / "model.onnx"
    shutil.copy(tiny_mlp_onnx, model)
    cache = ["--cache-dir", str(verilator_cache)]
    first, second = tmp_path / "builds" / "first", tmp_path / "builds" / "second"
    assert main(["build", str(model), "-o", str(first), "--target-cycles", "2048", *cache]) == 0
    toml = (first / "build.toml").read_text()
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert 'model = "../../model.onnx"' in toml and f'model_sha256 = "{digest}"' in toml
    assert main(["build", "--config", str(first / "build.toml"), "-o", str(second), *cache]) == 0
    assert rtl_files(first) == rtl_files(second)
    assert json.loads((first / "report.json").read_text()) == json.loads((second / "report.json").read_text())
    assert (second / "build.toml").read_text() == toml
    capsys.readouterr()

    import onnx
    changed = onnx.load(str(model))
    changed.doc_string = "retrained"
    onnx.save(changed, str(model))
    third = tmp_path / "builds" / "third"
    assert main(["build", "--config", str(first / "build.toml"), "-o", str(third), *cache]) == 2
    err = capsys.readouterr().err
    new_digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert err.count("\n") == 1 and "has changed since the build" in err, err
    assert digest in err and new_digest in err and not third.exists()
    # the model on the command line wins over the file's
    assert main(["build", str(tiny_mlp_onnx), "--config", str(first / "build.toml"), "-o", str(third), *cache]) == 0
    assert rtl_files(first) == rtl_files(third)
    assert main(["build", "-o", str(tmp_path / "none")]) == 2
    assert "give the MODEL to build" in capsys.readouterr().err


def test_in_memory_model_is_named_by_its_copy(tiny_mlp_onnx, tmp_path, verilator_cache):
    """A model built from memory (a ModelWrapper, a torch module) has no file of its own: build.toml
    names the build's copy of it, and `--config` alone rebuilds it."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hwgen.builder import build
    from hwgen.config import BuildConfig

    first, second = tmp_path / "first", tmp_path / "second"
    build(ModelWrapper(str(tiny_mlp_onnx)), first, BuildConfig(target_cycles=2048, cache_dir=verilator_cache))
    assert 'model = "graphs/00_input.onnx"' in (first / "build.toml").read_text()
    assert main(["build", "--config", str(first / "build.toml"), "-o", str(second),
                 "--cache-dir", str(verilator_cache)]) == 0
    assert rtl_files(first) == rtl_files(second)


@pytest.mark.parametrize("text, problem", [
    ("pe = 4", "'pe': unknown option (known: target_cycles"),
    ("target_cycles = \"many\"", "'target_cycles': has the wrong type (str)"),
    ("target_cycles = [", "not valid TOML"),
])
def test_bad_config_is_one_line(text, problem, tiny_mlp_onnx, tmp_path, capsys):
    path = tmp_path / "build.toml"
    path.write_text(text)
    assert main(["build", str(tiny_mlp_onnx), "-o", str(tmp_path / "out"), "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_from_step_fold_is_a_full_build(tiny_mlp_onnx, tmp_path, verilator_cache):
    """Refolding from the to_hardware checkpoint gives what a whole build with the new target gives."""
    cache = ["--cache-dir", str(verilator_cache)]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert main(["build", str(tiny_mlp_onnx), "-o", str(full), "--target-cycles", "512", *cache]) == 0
    assert main(["build", str(tiny_mlp_onnx), "-o", str(resumed), "--target-cycles", "4096", *cache]) == 0
    kept = (resumed / "graphs" / "02_streamline.onnx").stat().st_mtime_ns
    assert main(["build", str(tiny_mlp_onnx), "-o", str(resumed), "--target-cycles", "512", "--from-step", "fold",
                 *cache]) == 0
    assert rtl_files(full) == rtl_files(resumed)
    assert json.loads((full / "report.json").read_text()) == json.loads((resumed / "report.json").read_text())
    assert (resumed / "graphs" / "02_streamline.onnx").stat().st_mtime_ns == kept  # not run again
    assert sorted(p.name for p in (resumed / "graphs").iterdir()) == sorted(p.name for p in (full / "graphs").iterdir())


def test_from_step_needs_a_build_of_the_same_model(tiny_mlp_onnx, tmp_path, capsys, verilator_cache):
    assert main(["build", str(tiny_mlp_onnx), "-o", str(tmp_path / "none"), "--from-step", "fold"]) == 2
    assert "--from-step needs a finished build here" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["build", str(tiny_mlp_onnx), "-o", str(out), "--cache-dir", str(verilator_cache)]) == 0
    assert main(["build", str(tiny_mlp_onnx), "-o", str(out), "--from-step", "ingest"]) == 2
    assert "--from-step: must be one of partition, to_hardware, fold" in capsys.readouterr().err
    other = tmp_path / "other.onnx"
    import onnx
    m = onnx.load(str(tiny_mlp_onnx))
    m.doc_string = "another"
    onnx.save(m, str(other))
    assert main(["build", str(other), "-o", str(out), "--from-step", "fold"]) == 2
    assert "was built from another model" in capsys.readouterr().err

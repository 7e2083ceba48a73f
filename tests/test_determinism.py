"""The same model builds into byte-identical RTL, reports (JSON and HTML) and stream descriptions."""

from __future__ import annotations

from hwgen.builder import build
from hwgen.config import BuildConfig


def test_same_input_same_files(tiny_mlp_onnx, tmp_path):
    for name in ("a", "b"):
        build(tiny_mlp_onnx, tmp_path / name, BuildConfig(target_cycles=300))
    a_files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                     if p.is_file() and p.suffix in (".v", ".il", ".json", ".toml", ".html"))
    assert any(str(p).startswith("rtl/") for p in a_files)
    for rel in a_files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_same_files_from_two_fresh_processes(tiny_mlp_onnx, tmp_path):
    """Two builds in two new interpreters with different hash seeds (set iteration order differs
    between them) write the very same RTL and JSON."""
    import os
    import subprocess
    import sys

    code = ("import sys; from hwgen.builder import build; from hwgen.config import BuildConfig; "
            "build(sys.argv[1], sys.argv[2], BuildConfig(target_cycles=300))")
    for name, seed in (("a", "1"), ("b", "2")):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", code, str(tiny_mlp_onnx), str(tmp_path / name)], env=env, check=True,
                       capture_output=True)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file() and p.suffix in (".v", ".il", ".json", ".toml", ".html"))
    assert any(str(p).startswith("rtl/") for p in files) and (tmp_path / "a" / "accelerator.json").is_file()
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel

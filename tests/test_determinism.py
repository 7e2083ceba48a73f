"""The same model builds into byte-identical RTL, reports and stream descriptions."""

from __future__ import annotations

from hwgen.build import build
from hwgen.config import BuildConfig


def test_same_input_same_files(tiny_mlp_onnx, tmp_path):
    for name in ("a", "b"):
        build(tiny_mlp_onnx, tmp_path / name, BuildConfig(target_cycles=300))
    a_files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                     if p.is_file() and p.suffix in (".v", ".il", ".json", ".toml"))
    assert any(str(p).startswith("rtl/") for p in a_files)
    for rel in a_files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel

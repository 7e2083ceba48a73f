"""The installed package: every hwgen subpackage is listed in pyproject.toml, and the model zoo
installs as `hwgen.models` (a top-level `models` would collide with other projects' modules)."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "hwgen").rglob("__init__.py")}
    assert found | {"hwgen.models"} == listed


def test_the_zoo_is_hwgen_models():
    spec = importlib.util.find_spec("hwgen.models.blocks")
    assert spec is not None and Path(spec.origin) == ROOT / "models" / "blocks.py"

"""Opening a file never runs code from it: a checkpoint is unpickled with `weights_only`, and a
build folder's graphs are data, checked before QONNX executes them (executing a node imports the
Python module its domain names)."""

from __future__ import annotations

import pickle
import shutil
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from hwgen.builder import build
from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.models.bnn_pynq import load_checkpoint


class _Payload:
    """Unpickling this calls `exec` on a line that leaves a marker file: what a crafted
    checkpoint could do with `torch.load(..., weights_only=False)`."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_a_crafted_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "evil.tar"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Payload(marker)}, f)
    with pytest.raises(HwgenError, match="not a checkpoint of plain tensors"):
        load_checkpoint("TFC_1W1A", path)
    assert not marker.exists()


def test_a_crafted_build_folder_runs_nothing(tiny_mlp_onnx, tmp_path, monkeypatch, capsys):
    """A host graph whose node names a Python module as its domain (one that, imported, would
    leave a marker) is refused before anything executes."""
    out = tmp_path / "build"
    build(tiny_mlp_onnx, out)
    module = tmp_path / "hwgen_crafted_domain.py"
    marker = tmp_path / "ran.txt"
    module.write_text(f"open({str(marker)!r}, 'w').write('ran')\ncustom_op = {{}}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pre = onnx.load(str(out / "host_pre.onnx"))
    first = pre.graph.node[0]
    first.domain = "hwgen_crafted_domain"
    pre.opset_import.append(helper.make_opsetid("hwgen_crafted_domain", 1))
    onnx.save(pre, str(out / "host_pre.onnx"))
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1, 28, 28), np.float32))
    for command in (["sim", str(out), "--input", str(x), "--output", str(tmp_path / "y.npy")],
                    ["verify", str(out), "--input", str(x)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "hwgen_crafted_domain" in err and "not a graph of a hwgen build" in err
    assert not marker.exists() and "hwgen_crafted_domain" not in sys.modules
    # the build folder holds data only: no Python
    assert not [p for p in out.rglob("*") if p.suffix in (".py", ".pyc", ".pkl", ".pickle")]
    shutil.rmtree(out)

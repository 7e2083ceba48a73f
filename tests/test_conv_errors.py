"""Convolutions hardware cannot build yet are refused with exit status 2 naming the node."""

from __future__ import annotations

import pytest

from hwgen.cli import main
from hwgen.frontend import export_brevitas
from hwgen.models.convnet import BnnConvNet, ConvSpec, randomize_conv


@pytest.mark.parametrize("spec,word", [(ConvSpec(8, groups=2), "grouped"), (ConvSpec(8, dilation=2), "dilated")])
def test_unsupported_convolution(spec, word, tmp_path, capsys):
    net = randomize_conv(BnnConvNet(4, (9, 9), [spec]), seed=0)
    path = tmp_path / "m.onnx"
    export_brevitas(net, (1, 4, 9, 9)).save(str(path))
    code = main(["build", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and word in err and "node Conv_0" in err, err
    assert not (tmp_path / "out" / "report.json").exists()

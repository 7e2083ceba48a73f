"""The CNV models: they run, export to QONNX, and the exported graph computes what Brevitas does on
real CIFAR-10 images; their random parameters are deterministic and keep activations balanced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantIdentity

from hwgen.execute import execute
from hwgen.frontend import export_brevitas, prepare
from hwgen.models.cnv import cnv_w1a1, cnv_w1a1_padded, with_fixed_batchnorm_statistics

MODELS = {"cnv_w1a1": cnv_w1a1, "cnv_w1a1_padded": cnv_w1a1_padded}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    return request.param, with_fixed_batchnorm_statistics(MODELS[request.param](), seed=0)


@pytest.fixture(scope="module")
def cifar8(shared_data) -> np.ndarray:
    images = np.load(shared_data / "cifar10" / "cifar10_test_first1017.npz")["images"][:8]
    return (images / 255.0).astype(np.float32)


def _sign_fractions(model, x: torch.Tensor) -> list[float]:
    """Fraction of +1 outputs of every sign activation (QuantIdentity after the input quantizer)."""
    acts = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: acts.append(out.detach()))
             for m in model.modules() if isinstance(m, QuantIdentity)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return [float((a > 0).float().mean()) for a in acts[1:]]


def test_forward_on_a_batch(model):
    name, m = model
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = m(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    padding = {c.padding for c in m.modules() if isinstance(c, QuantConv2d)}
    assert padding == ({(1, 1)} if name.endswith("padded") else {(0, 0)})


def test_exported_graph_matches_brevitas(model, cifar8):
    _, m = model
    graph = prepare(export_brevitas(m, (1, 3, 32, 32)))
    with torch.no_grad():
        expected = m(torch.from_numpy(cifar8)).numpy()
    got = execute(graph, cifar8)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_activations_balanced_on_real_images(model, cifar8):
    _, m = model
    fractions = _sign_fractions(m, torch.from_numpy(cifar8))
    assert len(fractions) == 8  # six convolutions, two FCs
    assert all(0.2 < f < 0.8 for f in fractions), fractions


def test_parameters_deterministic_from_seed():
    a = with_fixed_batchnorm_statistics(cnv_w1a1(), seed=3).state_dict()
    b = with_fixed_batchnorm_statistics(cnv_w1a1(), seed=3).state_dict()
    c = with_fixed_batchnorm_statistics(cnv_w1a1(), seed=4).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)

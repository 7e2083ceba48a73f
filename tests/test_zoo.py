"""The model zoo: its command line, ABC-Net's arithmetic, and each family's small config built and
run in Verilator bit for bit against Brevitas (32 images, with random stalls too), stall-free within
5 % of the slowest unit's estimate.

ABC-Net (3, 3) runs by default; the other families' small configs take 1-3 minutes each and run
with `-m slow` (their blocks are in the default run, `tests/test_blocks.py`).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hwgen.build import build
from hwgen.cli import main
from hwgen.config import BuildConfig
from hwgen.models.abcnet import ALPHA_BITS, BETA_BITS, ABCConv, binarize, fixed_point
from hwgen.models.zoo import export, network
from hwgen.simulate import check_checkpoints, simulate_build

FRAMES = 32
NAMES = ["reactnet-a", "bireal-18", "bireal-34", "binarydensenet-28", "binarydensenet-37",
         "abcnet-18-m1n1", "abcnet-18-m3n3", "abcnet-18-m5n5", "tfc", "sfc", "lfc", "cnv"]


def test_zoo_list(capsys):
    assert main(["zoo", "list", "--json"]) == 0
    rows = {(r["name"], r["size"]): r for r in json.loads(capsys.readouterr().out)}
    assert sorted({n for n, _ in rows}) == sorted(NAMES)
    for name in NAMES[:8]:
        assert rows[name, "imagenet"]["input_shape"] == [1, 3, 224, 224]
        assert rows[name, "small"]["input_shape"] == [1, 3, 32, 32]
    # binary operations per frame as the papers count them: Bi-Real-18 1.68e9, ReActNet-A 4.82e9
    assert round(rows["bireal-18", "imagenet"]["binary_macs"] / 1e9, 2) == 1.68
    assert round(rows["reactnet-a", "imagenet"]["binary_macs"] / 1e9, 2) == 4.82
    # ABC-Net (M, N) runs M x N binary convolutions where Bi-Real Net runs one
    assert rows["abcnet-18-m3n3", "imagenet"]["binary_macs"] == 9 * rows["abcnet-18-m1n1", "imagenet"]["binary_macs"]
    assert rows["reactnet-a", "imagenet"]["parameters"] > 29_000_000


def test_zoo_export_and_its_errors(tmp_path, capsys):
    out = tmp_path / "abc.onnx"
    assert main(["zoo", "export", "abcnet-18-m1n1", "--seed", "3", "-o", str(out)]) == 0
    assert out.stat().st_size > 0 and "exported abcnet-18-m1n1 (small)" in capsys.readouterr().out
    assert main(["zoo", "export", "resnet-50", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "zoo name 'resnet-50': no such network in the zoo" in capsys.readouterr().err
    assert main(["zoo", "export", "tfc", "--size", "imagenet", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "zoo network tfc: comes in small, not imagenet" in capsys.readouterr().err
    assert main(["zoo", "export", "tfc", "-o", str(tmp_path / "x.txt")]) == 2
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "x.onnx").exists()
    assert main(["zoo", "export", "tfc", "--checkpoint", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "none.pt: no such checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["reactnet-a", "bireal-18", "binarydensenet-28", "abcnet-18-m3n3"])
def test_same_seed_same_network(name):
    torch.manual_seed(123)
    a, b = network(name, seed=7).state_dict(), network(name, seed=7).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], v) for k, v in network(name, seed=8).state_dict().items())
    assert torch.equal(torch.rand(3), torch.manual_seed(123) and torch.rand(3))  # caller's generator untouched


def test_zoo_checkpoint_round_trip(tmp_path):
    net = network("abcnet-18-m3n3", seed=5)
    torch.save(net.state_dict(), tmp_path / "abc.pt")
    again = network("abcnet-18-m3n3", checkpoint=tmp_path / "abc.pt")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), again(x))


@pytest.mark.parametrize("m, n", [(1, 1), (3, 3), (5, 2)])
def test_abc_conv_is_the_papers_double_sum(m, n):
    """sum_{m,n} alpha_m beta_n conv(B_m, A_n), computed term by term, equals the layer's output
    bit for bit: the fixed-point coefficients make every term exact in float."""
    conv = ABCConv(8, 6, 3, 1, m, n, 8.0)
    conv.randomize_(torch.Generator().manual_seed(m))
    conv.activations.randomize_(torch.Generator().manual_seed(n))
    x = torch.randint(-128, 128, (4, 8, 7, 7)) / 16.0  # 8-bit activations of scale 2^-4
    with torch.no_grad():
        alpha = fixed_point(conv.alpha, ALPHA_BITS)
        beta = fixed_point(conv.activations.beta, BETA_BITS)
        bases = binarize(conv.latent)
        signs = [torch.where(x + conv.activations.shifts[j] >= 0, 1.0, -1.0) for j in range(n)]
        paper = sum(alpha[i] * beta[j] * F.conv2d(signs[j], bases[i], padding=1) for i in range(m) for j in range(n))
        assert torch.equal(conv(x), paper)
        assert torch.all(alpha * 2 ** ALPHA_BITS == torch.round(alpha * 2 ** ALPHA_BITS))
        assert len(set(beta.tolist())) > 1 or n == 1  # the bases are weighted differently


def family_case(name: str, slow: bool):
    return pytest.param(name, id=name, marks=pytest.mark.slow if slow else ())


@pytest.mark.parametrize("name", [family_case("abcnet-18-m3n3", False)] + [
    family_case(name, True) for name in ("reactnet-a", "bireal-18", "binarydensenet-28", "abcnet-18-m1n1")])
def test_small_config_bit_exact_with_brevitas(name, tmp_path, verilator_cache):
    net = network(name, "small", seed=0)
    path = export(name, tmp_path / f"{name}.onnx", "small", seed=0)
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=20_000, cache_dir=verilator_cache))
    x = np.random.default_rng(2).random((FRAMES, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        brevitas = net(torch.from_numpy(x)).numpy()
    assert all(same for _, same in check_checkpoints(out, x[:4]))
    slowest = report["totals"]["max_est_cycles"]
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=4, cache_dir=verilator_cache)
        assert np.array_equal(y, brevitas), f"rtlsim differs from Brevitas (stall {stall})"
        if stall == 0.0:
            assert slowest <= stats["cycles_per_frame"] <= 1.05 * slowest, (stats, slowest)
    ops = {layer["op"] for layer in report["layers"]}
    assert {"DuplicateStreams", "AddStreams" if "dense" not in name else "ConcatStreams"} <= ops

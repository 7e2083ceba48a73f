"""The model zoo: its command line, ABC-Net's arithmetic, and each family's small config built and
run in Verilator bit for bit against Brevitas (32 images, with random stalls too), stall-free at
exactly the slowest unit's estimate.

The families' small configs take minutes each and run with `-m slow` (their blocks are in the
default run, `tests/test_blocks.py`, and so is a small ABC ResNet written the paper's way,
`tests/test_user_models.py`), and so does one block of each type at the channel widths of the
ImageNet configs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hwgen.builder import build
from hwgen.cli import main
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.models.abcnet import ALPHA_BITS, BETA_BITS, ABCBasicBlock, ABCConv, binarize, fixed_point
from hwgen.models.blocks import BiRealBlock, BiRealDownsampleBlock, BlockNet, DenseLayer, DenseTransition, ReActNetBlock
from hwgen.models.zoo import export, network, randomize
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


def assert_rtlsim_is_brevitas(net, out, report: dict, x: np.ndarray, cache) -> None:
    """rtlsim of the build in `out` equals Brevitas bit for bit, without and with random stalls,
    and without stalls runs at exactly the slowest unit's estimated cycles per frame."""
    with torch.no_grad():
        brevitas = net(torch.from_numpy(x)).numpy()
    slowest = report["totals"]["max_est_cycles"]
    for stall in (0.0, 0.3):
        y, stats = simulate_build(out, x, stall_prob=stall, seed=4, cache_dir=cache)
        assert np.array_equal(y, brevitas), f"rtlsim differs from Brevitas (stall {stall})"
        if stall == 0.0:
            assert stats["cycles_per_frame"] == slowest, (stats["cycles_per_frame"], slowest)


def family_case(name: str, slow: bool):
    return pytest.param(name, id=name, marks=(pytest.mark.slow,) if slow else ())


@pytest.mark.parametrize("name", [
    family_case("abcnet-18-m3n3", True), family_case("reactnet-a", True),
    family_case("bireal-18", True), family_case("binarydensenet-28", True),
    family_case("abcnet-18-m1n1", True)])
def test_small_config_bit_exact_with_brevitas(name, tmp_path, verilator_cache):
    net = network(name, "small", seed=0)
    path = export(name, tmp_path / f"{name}.onnx", "small", seed=0)
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=20_000, cache_dir=verilator_cache))
    x = np.random.default_rng(2).random((FRAMES, 3, 32, 32)).astype(np.float32)
    assert all(same for _, same in check_checkpoints(out, x[:4]))
    assert_rtlsim_is_brevitas(net, out, report, x, verilator_cache)
    ops = {layer["op"] for layer in report["layers"]}
    assert {"DuplicateStreams", "AddStreams" if "dense" not in name else "ConcatStreams"} <= ops


#: one block of each distinct type, at the channel widths of the ImageNet configs, on a small
#: feature map (the widths decide the units' shapes; the map's size only the frame's length)
IMAGENET_BLOCKS = {
    "reactnet_normal": (lambda: ReActNetBlock(512, 512, 1), 512, 4),
    "reactnet_reduction": (lambda: ReActNetBlock(512, 1024, 2), 512, 4),
    "bireal": (lambda: BiRealBlock(512), 512, 4),
    "bireal_downsample": (lambda: BiRealDownsampleBlock(256, 512), 256, 4),
    "dense_layer": (lambda: DenseLayer(448, 64), 448, 4),  # BDN-28's last layer of block 1
    "dense_transition": (lambda: DenseTransition(448, 160), 448, 4),
    "abc_basic": (lambda: ABCBasicBlock(256, 256, 1, 3, 3), 256, 4),
    "abc_downsample": (lambda: ABCBasicBlock(128, 256, 2, 3, 3), 128, 4),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(IMAGENET_BLOCKS))
def test_block_at_imagenet_width_bit_exact(name, tmp_path, verilator_cache):
    make, channels, size = IMAGENET_BLOCKS[name]
    net = BlockNet(make(), channels, size)
    randomize(net, seed=0)
    path = tmp_path / f"{name}.onnx"
    export_brevitas(net, net.input_shape).save(str(path))
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=50_000, cache_dir=verilator_cache))
    x = np.random.default_rng(5).random((4, *net.input_shape[1:])).astype(np.float32)
    assert_rtlsim_is_brevitas(net, out, report, x, verilator_cache)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES[:8])
def test_imagenet_config_builds_with_a_fit_table(name, tmp_path, verilator_cache):
    """Without rtlsim: the build's report has the folding, the estimates and a row per part."""
    path = export(name, tmp_path / f"{name}.onnx", "imagenet", seed=0)
    report = build(path, tmp_path / "build", BuildConfig(target_fps=100, cache_dir=verilator_cache))
    assert report["fifo_sizing"] == "modelled"  # too large to measure in Verilator
    assert report["totals"]["max_est_cycles"] <= 1_000_000  # 100 FPS at 100 MHz
    assert all(layer["PE"] is not None for layer in report["layers"] if layer["op"] in ("MVU", "DramMVU"))
    rows = {row["part"]: row for row in report["parts"]}
    assert list(rows) == ["xc7z020", "xczu3eg", "xczu7ev", "xck26"]
    # every weight of every layer is on chip or in DRAM (where the xc7z020's block RAM cannot hold
    # it: `--weight-memory auto`), at one bit or more
    model = network(name, "imagenet")
    elements = sum(m.latent[0].numel() if isinstance(m, ABCConv) else m.weight.numel() for m in model.modules()
                   if isinstance(m, (ABCConv, torch.nn.Conv2d, torch.nn.Linear)))
    assert rows["xc7z020"]["weight_bits"] + 8 * report["dram"]["bytes_per_frame"] >= elements
    assert rows["xczu7ev"]["est_uram"] > 0 and rows["xczu7ev"]["est_bram18"] < rows["xc7z020"]["est_bram18"]
    assert all(row["fps"] == row["clock_mhz"] * 1e6 / report["totals"]["max_est_cycles"] for row in rows.values())


@pytest.mark.slow
def test_abcnet_with_products_off_their_dsps_where_the_part_has_few_dsps(tmp_path, verilator_cache):
    """ABC-Net (3, 3)'s multi-level MVUs at 10,000 cycles a frame take more DSPs (88) than the
    xc7z010's 80: folding packs the stem's products (UINT8 pixels) two to a DSP (it built a
    layer's products in LUTs before packing came), and rtlsim is still Brevitas."""
    name = "abcnet-18-m3n3"
    net = network(name, "small", seed=0)
    path = export(name, tmp_path / f"{name}.onnx", "small", seed=0)
    roomy = build(path, tmp_path / "roomy", BuildConfig(target_cycles=10_000, cache_dir=verilator_cache))
    assert roomy["totals"]["est_dsps"] > 80
    assert not any(layer["products_in_luts"] or layer["packed_products"] for layer in roomy["layers"])
    out = tmp_path / "build"
    report = build(path, out, BuildConfig(target_cycles=10_000, part="xc7z010", cache_dir=verilator_cache))
    assert report["totals"]["est_dsps"] <= 80
    assert [layer["name"] for layer in report["layers"] if layer["packed_products"]] == ["ConvMVU_0"]
    x = np.random.default_rng(2).random((FRAMES, 3, 32, 32)).astype(np.float32)
    assert_rtlsim_is_brevitas(net, out, report, x, verilator_cache)

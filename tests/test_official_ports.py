"""The official ReActNet-A and Bi-Real-18 code as a user ports it to Brevitas (`hwgen.models.ports`):
Brevitas' default quantizers (float scales calibrated on data, binary weights of scale 0.1) verify
on 32 frames with random stalls, and on 256 frames every frame is bit-exact or a named tie, ties
under 1 % for the ReActNet-A ports, under 2 % and 4 % for the Bi-Real-18 ones (`TIE_RATES`; a
rate measured on 32 frames moves in steps of 3 %); with power-of-two quantizers in their place the
accelerator equals Brevitas bit for bit, with and without stalls.

The default run holds the two blocks the ports add to what the zoo builds: Bi-Real's downsampling
(a binary convolution's accumulator joined to the 1x1 8-bit convolution of the pooled shortcut: a
join too wide to tabulate) and ReActNet's stride-1 channel-doubling block. The whole ports, and the
ReActNet-A port trained on MNIST, are `slow`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from brevitas.nn import QuantLinear
from torch import nn

from hwgen.builder import build
from hwgen.config import BuildConfig
from hwgen.frontend import export_brevitas
from hwgen.models.ports import (
    BiReal18Port, BiRealBasicBlock, Quantizers, ReActNetBasicBlock, ReActNetPort, trained_looking,
)
from hwgen.simulate import simulate_build, verify_build

FRAMES = 32
#: frames the tie rate is measured on
RATE_FRAMES = 256


class OneBlock(nn.Module):
    """One port block on an 8-bit input, then the ports' head: average pool, 8-bit quantizer, linear."""

    def __init__(self, block: nn.Module, channels_in: int, channels_out: int, pow2: bool = False) -> None:
        super().__init__()
        q = Quantizers(pow2)
        self.inq, self.block = q.int8(), block
        self.pool, self.pool_q = nn.AdaptiveAvgPool2d(1), q.int8(quant_tensor=True)
        self.fc = QuantLinear(channels_out, 10, bias=True, **q.int8_weights())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool_q(self.pool(self.block(self.inq(x)))).flatten(1))


def _build(module: nn.Module, shape: tuple[int, ...], tmp_path: Path, cache: Path) -> Path:
    export_brevitas(module, shape).save(str(tmp_path / "m.onnx"))
    out = tmp_path / "b"
    build(tmp_path / "m.onnx", out, BuildConfig(cache_dir=cache))
    return out


def _calibration(image: tuple[int, ...]) -> torch.Tensor:
    """64 seeded images the quantizers' scales and the BatchNorm statistics are calibrated on."""
    return torch.randn(64, *image, generator=torch.Generator().manual_seed(0))


def _frames(image: tuple[int, ...], count: int = FRAMES) -> np.ndarray:
    return np.random.default_rng(5).standard_normal((count, *image)).astype(np.float32)


def _verifies_with_ties_under_one_percent(out: Path, image: tuple[int, ...], cache: Path,
                                          tie_rate: float = 0.01) -> None:
    """`verify` passes on 32 frames with random stalls, and on 256 frames (where one tie is 0.4 %,
    not 3 %) every frame is bit-exact or a named tie, the ties under `tie_rate` (1 %)."""
    result = verify_build(out, _frames(image, count=FRAMES), stall_prob=0.3, cache_dir=cache)
    assert result.passed and result.integer_mismatches == 0, result.summary()
    result = verify_build(out, _frames(image, count=RATE_FRAMES), cache_dir=cache)
    assert result.passed and result.integer_mismatches == 0 and result.tie_frames < tie_rate * RATE_FRAMES, \
        result.summary()


def _is_brevitas(module: nn.Module, out: Path, x: np.ndarray, cache: Path) -> None:
    """rtlsim equals Brevitas bit for bit on every frame of `x`, with and without stalls."""
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    for stall in (0.0, 0.3):
        y, _ = simulate_build(out, x, stall_prob=stall, seed=3, cache_dir=cache)
        assert np.array_equal(y, want), stall


@pytest.mark.parametrize("pow2", [False, True], ids=["brevitas-defaults", "power-of-two"])
def test_bireal_downsampling_joins_two_accumulators(pow2, tmp_path: Path, verilator_cache):
    """Bi-Real's downsampling block as its code writes it (binary 3x3 stride-2 convolution with its
    scaling factor and BatchNorm, added to a 2x2 average pool, 1x1 8-bit convolution and BatchNorm
    of the input): the two accumulators join in one scaled add with a pair of integer coefficients
    per channel, found by bisection (the 1x1 convolution's sums take 10^5 values)."""
    q = Quantizers(pow2)
    module = OneBlock(BiRealBasicBlock(4, 8, 2, q), 4, 8, pow2)
    image = (4, 8, 8)
    trained_looking(module, _calibration(image), seed=1)
    out = _build(module, (1, *image), tmp_path, verilator_cache)
    if pow2:
        _is_brevitas(module, out, _frames(image), verilator_cache)
    else:
        _verifies_with_ties_under_one_percent(out, image, verilator_cache)


def test_reactnet_stride_one_channel_doubling_block(tmp_path: Path, verilator_cache):
    """The official network's second block: 32 -> 64 channels at stride 1, two 1x1 binary
    convolutions each added to the same RPReLU output and concatenated, no pooling; LearnableBias
    written as `bias.expand_as(x)`; Brevitas' defaults."""
    module = OneBlock(ReActNetBasicBlock(4, 8, 1, Quantizers(False)), 4, 8)
    image = (4, 6, 6)
    trained_looking(module, _calibration(image), seed=2)
    out = _build(module, (1, *image), tmp_path, verilator_cache)
    _verifies_with_ties_under_one_percent(out, image, verilator_cache)


PORTS = [(ReActNetPort, (3, 32, 32)), (ReActNetPort, (1, 28, 28)), (BiReal18Port, (3, 32, 32)),
         (BiReal18Port, (1, 28, 28))]
PORT_IDS = ["reactnet-a-32x32-rgb", "reactnet-a-mnist", "bireal-18-32x32-rgb", "bireal-18-mnist"]


#: the Bi-Real-18 ports' tie rates with Brevitas' defaults, above the 1 % the ReActNet-A ports
#: keep: 32x32 RGB 3 of 256 frames (1.2 %); MNIST under 4 %. Their shortcut joins add a 1x1 8-bit
#: convolution of float-scaled tensors to the binary branch; the model rounds those products and
#: sums in float32, and on these frames a join's real sum lies within that rounding of a level's
#: boundary (`verify` names each).
TIE_RATES = {(BiReal18Port, (3, 32, 32)): 0.02, (BiReal18Port, (1, 28, 28)): 0.04}


@pytest.mark.slow
@pytest.mark.parametrize("make, image", PORTS, ids=PORT_IDS)
def test_port_with_brevitas_defaults_verifies(make, image, tmp_path: Path, verilator_cache):
    module = trained_looking(make(image=image), _calibration(image), seed=0)
    out = _build(module, module.input_shape, tmp_path, verilator_cache)
    rate = TIE_RATES.get((make, image), 0.01)
    _verifies_with_ties_under_one_percent(out, image, verilator_cache, tie_rate=rate)


@pytest.mark.slow
@pytest.mark.parametrize("make, image", PORTS, ids=PORT_IDS)
def test_port_with_power_of_two_quantizers_is_bit_exact(make, image, tmp_path: Path, verilator_cache):
    """Bit-exact with Brevitas with and without stalls, and `verify` names no tie."""
    module = trained_looking(make(image=image, pow2=True), _calibration(image), seed=0)
    out = _build(module, module.input_shape, tmp_path, verilator_cache)
    x = _frames(image)
    result = verify_build(out, x, cache_dir=verilator_cache)
    assert result.passed and result.integer_mismatches == 0, result.summary()
    assert result.exact, result.summary()
    _is_brevitas(module, out, x, verilator_cache)


@pytest.mark.slow
def test_reactnet_port_trained_on_mnist_agrees_on_1000_images(tmp_path: Path, verilator_cache):
    """`hwgen.build(module)` on the ReActNet-A port (Brevitas' defaults) after 300 steps of training
    on the bundled MNIST: on 1,000 test images the accelerator's class is the model's every time,
    and `verify` passes."""
    import hwgen
    from hwgen.models.datasets import mnist5k

    data = mnist5k()
    torch.manual_seed(0)
    module = ReActNetPort(image=(1, 28, 28))
    optimizer = torch.optim.Adam(module.parameters(), lr=2e-3)
    module.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        batch = torch.randint(0, len(data.x_train), (64,), generator=g)
        loss = nn.functional.cross_entropy(module(torch.from_numpy(data.x_train[batch])),
                                           torch.from_numpy(data.y_train[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    x, labels = data.x_test[:1000], data.y_test[:1000]
    with torch.no_grad():
        # Brevitas' default binary weight quantizer clamps the latent float weights in place on
        # each forward, and the ported HardBinaryConv takes its mean |w| from them before it: the
        # first forward after an optimizer step still sees the unclamped weights (2.2 apart in
        # the logits here), every later one, and the export, the clamped ones. The model is the
        # settled one.
        module(torch.from_numpy(x[:1]))
        want = module(torch.from_numpy(x)).numpy().argmax(axis=1)
    assert (want == labels).mean() > 0.5  # it learned something: the agreement below is not trivial
    accelerator = hwgen.build(module, tmp_path / "b", cache_dir=verilator_cache)
    assert np.array_equal(accelerator.sim(x).argmax(axis=1), want)
    result = accelerator.verify(x[:FRAMES])
    assert result.passed, result.summary()

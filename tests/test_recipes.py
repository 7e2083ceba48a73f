"""The papers' training recipes: each family gets its own, each change to training is what the paper
says and leaves the exported function alone, and the switches of the ablation do what they name."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from brevitas_examples.bnn_pynq.models.losses import SqrHingeLoss

from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.models import recipes
from hwgen.models.blocks import BinaryConvBN, RPReLU, RSign, sign_quant
from hwgen.models.datasets import Dataset, mnist5k
from hwgen.models.teacher import TEACHER
from hwgen.models.training import MODEL, TrainConfig, Trainer
from hwgen.models.zoo import network


def test_each_family_trains_by_its_paper():
    assert {f: recipes.recipe(None, f).name for f in recipes.FAMILY_RECIPE} == {
        "ReActNet": "reactnet", "Bi-Real Net": "bireal", "BinaryDenseNet": "ste", "ABC-Net": "abcnet"}
    assert recipes.recipe(None, "FINN").name == "bnn-pynq"
    reactnet = recipes.recipe(None, "ReActNet")
    assert reactnet.two_step and reactnet.distillation and reactnet.schedule == "linear"
    bireal = recipes.recipe(None, "Bi-Real Net")
    assert bireal.sign_gradient == "approx-sign" and bireal.magnitude_aware and bireal.pretrain
    ste = recipes.recipe(None, "BinaryDenseNet")
    assert not (ste.magnitude_aware or ste.two_step or ste.distillation) and ste.sign_gradient == "ste"
    pynq = recipes.recipe(None, "FINN")
    assert (pynq.lr, pynq.batch_size, pynq.loss, pynq.clip_weights) == (0.02, 100, "squared-hinge", True)
    off = recipes.recipe("reactnet", "ReActNet", ("rsign", "two-step"))
    assert not off.rsign and not off.two_step and off.rprelu and off.distillation
    with pytest.raises(HwgenError, match="--recipe adam: is not a recipe: one of reactnet, bireal"):
        recipes.recipe("adam", "ReActNet")
    with pytest.raises(HwgenError, match="--without bias: is not a switch"):
        recipes.recipe(None, "ReActNet", ("bias",))


def test_approx_sign_changes_the_gradient_not_the_sign():
    quant = sign_quant().train()
    x = torch.linspace(-1.5, 1.5, 31, requires_grad=True)
    plain = quant(x)
    plain.sum().backward()
    ste = x.grad.clone()
    x.grad = None
    r = recipes.recipe("bireal", "Bi-Real Net")
    with recipes.TrainingHooks(r, quant, []):
        approx = quant(x)
    approx.sum().backward()
    assert torch.equal(plain, approx)  # the forward function is the sign
    expected = torch.where(x.abs() < 1, 2 - 2 * x.abs(), torch.zeros_like(x)).detach()
    assert torch.allclose(x.grad, expected * ste) and torch.allclose(x.grad[x.abs() < 1], expected[x.abs() < 1])
    assert torch.equal(quant(x), plain)  # the hook is gone after the block


def test_magnitude_aware_weights_keep_the_trained_function_and_scale_the_gradient():
    torch.manual_seed(0)
    block = BinaryConvBN(4, 6, 3, 1, 2.0 ** -5, True).train()
    x = torch.where(torch.rand(8, 4, 6, 6) < 0.5, -1.0, 1.0)
    r = recipes.recipe("bireal", "Bi-Real Net")
    plain = block.bn(block.conv(x))
    with recipes.TrainingHooks(r, block, [block.conv]):
        scaled = block.bn(block.conv(x))
        alpha = block.conv.weight.abs().reshape(6, -1).mean(1)
        raw = block.conv(x)  # the hooked convolution: mean|W| sign(W) per output channel
    # BatchNorm in training normalizes the per-channel magnitude away: the function is unchanged
    # but for BatchNorm's epsilon, which weighs more against the smaller variance
    assert torch.allclose(plain, scaled, atol=1e-3) and not torch.allclose(plain, 0.5 * scaled, atol=1e-1)
    with torch.no_grad():
        assert torch.allclose(raw, torch.nn.functional.conv2d(x, torch.sign(block.conv.weight), padding=1)
                              * alpha[None, :, None, None], atol=1e-5)
    assert block.conv(x).requires_grad and not any(block.conv._forward_hooks)


def test_switched_off_shifts_are_zero_and_stay_so():
    model = network("reactnet-a", "small", image=(1, 28, 28))
    recipes.prepare(recipes.recipe("reactnet", "ReActNet", ("rsign", "rprelu")), model, 0)
    moved = [p for m in model.modules() if isinstance(m, (RSign, RPReLU)) for p in m.parameters() if p.dim() == 4]
    assert moved and all(not p.requires_grad and not p.any() for p in moved)
    slopes = [m.prelu.weight for m in model.modules() if isinstance(m, RPReLU)]
    assert all(p.requires_grad for p in slopes)  # without RPReLU's shifts it is a PReLU


def test_schedules():
    two = recipes.recipe("reactnet", "ReActNet")
    assert [recipes.lr_factor(two, s, 100, 10) for s in (0, 25, 49, 50, 75)] == pytest.approx([1.0, 0.5, 0.02, 1.0, 0.5])
    assert recipes.in_first_step(two, 49, 100) and not recipes.in_first_step(two, 50, 100)
    pynq = recipes.recipe("bnn-pynq", "FINN")
    assert [recipes.lr_factor(pynq, e * 10, 10_000, 10) for e in (0, 39, 40, 80)] == [1.0, 1.0, 0.5, 0.25]


def test_squared_hinge_is_bnn_pynqs():
    logits, y = torch.randn(16, 10), torch.randint(0, 10, (16,))
    target = torch.full((16, 10), -1.0).scatter_(1, y[:, None], 1.0)
    ours = recipes.loss(recipes.recipe("bnn-pynq", "FINN"), logits, y, None)
    assert torch.allclose(ours, SqrHingeLoss()(logits, target))


def _tiny() -> Dataset:
    d = mnist5k()
    return Dataset("tiny", d.x_train[::40], d.y_train[::40], d.x_test[:64], d.y_test[:64], d.test_source)


def test_reactnet_two_steps_with_a_teacher_then_resumes_with_it(tmp_path):
    """Step 1 computes with real weights, step 2 with binary ones; the teacher is trained first
    and written beside the checkpoint; the export is the binary network (it predicts what the
    trained network does)."""
    data = _tiny()
    cfg = TrainConfig("reactnet-a", tmp_path / "run", epochs=2, batch_size=25, threads=1)
    trainer = Trainer(cfg, data=data, log=lambda _: None)
    real_in_step = []
    enter = trainer._enter_step

    def spy(step: int) -> None:
        enter(step)
        real_in_step.append(all(layer.weight_quant.disable_quant for layer in trainer.binary_layers))

    trainer._enter_step = spy
    trainer.run()
    half = trainer.total_steps // 2
    assert trainer.binary_layers and real_in_step == [True] * half + [False] * (trainer.total_steps - half)
    assert (tmp_path / "run" / TEACHER).is_file() and (tmp_path / "run" / MODEL).is_file()
    from hwgen.execute import execute
    from hwgen.frontend.load import prepare_for_execution
    from qonnx.core.modelwrapper import ModelWrapper

    x = data.x_test[:16]
    with torch.no_grad():
        torch_out = trainer.model.eval()(torch.from_numpy(x)).numpy()
    onnx_out = execute(prepare_for_execution(ModelWrapper(str(tmp_path / "run" / MODEL))), x).reshape(torch_out.shape)
    assert np.array_equal(onnx_out.argmax(1), torch_out.argmax(1))
    # another run given that teacher distils from it: the same first loss as a run that trains its own
    given = Trainer(TrainConfig("reactnet-a", tmp_path / "given", epochs=1, batch_size=25, threads=1,
                                teacher=tmp_path / "run" / TEACHER), data=data, log=lambda _: None)
    given._prepare_teacher()
    a, b = (t.state_dict() for t in (trainer.teacher, given.teacher))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_bad_teacher_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "teacher.pt"
    bad.write_bytes(b"not a checkpoint")
    for teacher, message in ((tmp_path / "none.pt", "no such teacher"), (bad, "is not a teacher that hwgen train wrote")):
        assert main(["train", "reactnet-a", "--max-steps", "1", "--teacher", str(teacher), "--quiet",
                     "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert f"--teacher {teacher}: {message}" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "tfc", "--recipe", "nope", "-o", str(tmp_path / "o2")]) == 2
    assert "--recipe nope: is not a recipe" in capsys.readouterr().err


def test_pretraining_clips_instead_of_sign_until_switched_off():
    """Bi-Real's pre-training: while on, every sign outputs clip(x, -1, 1); off, the sign again."""
    model = network("bireal-18", "small", image=(1, 28, 28)).train()
    clip = recipes.ClipActivations(model)
    quant = clip.quantizers[0]
    x = torch.linspace(-2, 2, 9)
    clip.set(True)
    assert torch.equal(quant(x), torch.clamp(x, -1, 1))
    clip.set(False)
    assert torch.equal(quant(x), torch.where(x >= 0, 1.0, -1.0))
    assert len(clip.quantizers) == len(recipes.sign_quantizers(model)) > 1

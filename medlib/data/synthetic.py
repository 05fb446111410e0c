"""Synthetic datasets with the MedMNIST interface, for unit tests only (never a stand-in for
missing real data). Each class draws a bright square at its own position, so a small model
can learn it in a few steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medlib.data.heldout import HeldOut
from medlib.data.medmnist import MedMNISTData, Split
from medlib.data.registry import DatasetInfo

N_CLASSES = {"binary-class": 2, "multi-class": 4, "multi-label, binary-class": 3, "ordinal-regression": 5}


def synthetic(task: str = "binary-class", n: int = 64, size: int = 28, channels: int = 1,
              dim: int = 2, seed: int = 0) -> MedMNISTData:
    """A learnable toy dataset: n items per split, class c -> a bright patch at position c."""
    if task not in N_CLASSES:
        raise ValueError(f"unknown task {task!r}; valid choices: {', '.join(N_CLASSES)}")
    k = N_CLASSES[task]
    info = DatasetInfo(
        flag=f"synthetic-{task.split(',')[0]}", title="Synthetic", dim=dim, task=task,
        labels=tuple(f"class {i}" for i in range(k)), n_channels=channels,
        n_samples={"train": n, "val": n, "test": n}, sizes=(size,), license="none",
        description="synthetic test data", _raw={},
    )
    rng = np.random.default_rng(seed)
    splits = {}
    for s in ("train", "val", "test"):
        if task == "multi-label, binary-class":
            y = (rng.random((n, k)) < 0.4).astype(np.int64)
        else:
            y = (np.arange(n) % k)[:, None].astype(np.int64)
            rng.shuffle(y)
        shape = (n, channels) + (size,) * dim
        x = rng.normal(60, 20, shape)
        step = size // (k + 1)
        for i in range(n):
            on = np.flatnonzero(y[i]) if task.startswith("multi-label") else [y[i, 0]]
            for c in on:
                sl = (i, slice(None)) + (slice(c * step, c * step + step),) * dim
                x[sl] += 150
        images = torch.from_numpy(np.clip(x, 0, 255).astype(np.uint8))
        splits[s] = Split(images, torch.from_numpy(y), info, s)
    return MedMNISTData(info, size, Path("<synthetic>"), splits["train"], splits["val"], HeldOut(splits["test"]))

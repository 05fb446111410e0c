"""Batches straight from in-memory uint8 tensors: index, convert, normalise, augment on device.

No per-item PIL and no worker processes: one gather per batch. This is what makes an epoch
of a 28 px MedMNIST dataset take well under a second on a CPU (see bench/data_pipeline.py).
Explained in chapter 01.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from medlib.data.medmnist import Split


def normalize(x_uint8: torch.Tensor, mean: float = 0.5, std: float = 0.5) -> torch.Tensor:
    """uint8 [0, 255] -> float in [-1, 1] for the MedMNIST default Normalize(0.5, 0.5)."""
    return (x_uint8.float() / 255.0 - mean) / std


class TensorLoader:
    """Iterate over a `Split` in batches of (x float (B, C, ...), y) on `device`.

    `augment(x, generator)` is applied to the normalised training batch. Shuffling uses its
    own seeded generator, so the same seed gives the same batches.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int = 128,
        shuffle: bool = False,
        device: torch.device | str = "cpu",
        augment: Callable | None = None,
        drop_last: bool = False,
        seed: int = 0,
        mean: float = 0.5,
        std: float = 0.5,
        sampler_weights: torch.Tensor | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.images = split.images.to(self.device)  # stays uint8: 4x less memory than float
        self.targets = split.targets.to(self.device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.drop_last, self.mean, self.std = drop_last, mean, std
        self.sampler_weights = sampler_weights
        self.generator = torch.Generator().manual_seed(seed)
        self.aug_generator = torch.Generator(device=self.device).manual_seed(seed + 1)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> torch.Tensor:
        n = len(self.images)
        if self.sampler_weights is not None:  # resampling with replacement (class balance)
            return torch.multinomial(self.sampler_weights, n, True, generator=self.generator)
        return torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order().to(self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = normalize(self.images[idx], self.mean, self.std)  # (B, C, H, W) float
            if self.augment is not None:
                x = self.augment(x, self.aug_generator)
            yield x, self.targets[idx]

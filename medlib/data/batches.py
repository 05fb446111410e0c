"""Training batches straight from in-memory uint8 tensors: index, convert, normalise and
augment on the device, one gather per batch — no per-item PIL, no worker processes.

- `TensorLoader`: a MedMNIST `Split` in (shuffled) batches (chapter 01); this is what makes
  an epoch of a 28 px dataset take well under a second on a CPU (bench/data_pipeline.py).
- `SegBatches`: segmentation batches of whole images or random patches (chapter 05).

Both are re-iterable (one pass = one epoch), have a length, and carry their RNG state in
`state_dict()`, so that `medlib.train.Trainer` resumes an interrupted run exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch

from medlib.data.augment import augment_pair
from medlib.data.medmnist import Split

if TYPE_CHECKING:
    from medlib.data.segmentation import SegDataset, SegSplit


def normalize(x_uint8: torch.Tensor, mean: float = 0.5, std: float = 0.5) -> torch.Tensor:
    """uint8 [0, 255] -> float in [-1, 1] for the MedMNIST default Normalize(0.5, 0.5)."""
    return (x_uint8.float() / 255.0 - mean) / std


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats (a generator's or `normalize`'s output) -> uint8 [0, 255], as a PNG stores them."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


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

    def state_dict(self) -> dict:
        """The RNG states that decide the next epoch's order and augmentation (exact resume)."""
        return {"generator": self.generator.get_state(), "aug_generator": self.aug_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.aug_generator.set_state(state["aug_generator"])

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


# ----------------------------------------------------------------------------- segmentation
def sample_patches(
    images: torch.Tensor,
    masks: torch.Tensor,
    n: int,
    size: int,
    generator: torch.Generator | None = None,
    fov: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` random size×size crops: images (N, C, H, W) → (n, C, size, size), masks likewise.

    With `fov` (N, H, W), patch centres are drawn uniformly from field-of-view pixels, so
    no patch is wasted on the black background around a fundus image."""
    N, _, H, W = images.shape
    if size > H or size > W:
        raise ValueError(f"patch size {size} is larger than the images ({H}×{W})")
    if fov is None:
        idx = torch.randint(N, (n,), generator=generator)
        top = torch.randint(H - size + 1, (n,), generator=generator)
        left = torch.randint(W - size + 1, (n,), generator=generator)
    else:
        where = fov.flatten().nonzero()[:, 0]  # flat indices of FOV pixels over all images
        pick = where[torch.randint(len(where), (n,), generator=generator)]
        idx, rest = pick // (H * W), pick % (H * W)
        top = (rest // W - size // 2).clamp(0, H - size)
        left = (rest % W - size // 2).clamp(0, W - size)
    rows = top[:, None] + torch.arange(size)  # (n, size)
    cols = left[:, None] + torch.arange(size)
    xi = images[idx[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (n, size, size, C)
    yi = masks[idx[:, None, None], rows[:, :, None], cols[:, None, :]]  # (n, size, size)
    return xi.permute(0, 3, 1, 2), yi


class SegBatches:
    """A re-iterable of training batches (x, y) for `medlib.train` (with a state_dict()).

    Each epoch draws `batches_per_epoch` batches: random patches (`patch_size`; centred in
    the FOV when the split has one) or whole images (patch_size=None, shuffled),
    normalised and augmented on `device`.
    x: (B, C, P, P) float; y: (B, 1, P, P) float for binary masks, (B, P, P) long otherwise.
    """

    def __init__(
        self,
        data: SegDataset,  # normalize() and num_classes are used
        split: SegSplit,
        batch_size: int,
        *,
        patch_size: int | None = None,
        batches_per_epoch: int | None = None,
        device="cpu",
        seed: int = 0,
        aug: dict | None = None,
    ):
        self.data, self.split, self.batch_size = data, split, batch_size
        self.patch_size, self.device = patch_size, torch.device(device)
        n_full = math.ceil(len(split) / batch_size)
        self.batches_per_epoch = batches_per_epoch or n_full
        self.aug = {"flips": True, "rot90": True} if aug is None else aug
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        """The RNG state that decides the next epoch's patches and augmentation (exact resume)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _target(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, None].float() if self.data.num_classes == 2 else y.long()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self.generator
        order = torch.randperm(len(self.split), generator=g)
        for i in range(self.batches_per_epoch):
            if self.patch_size:
                xb, yb = sample_patches(
                    self.split.images, self.split.masks, self.batch_size, self.patch_size, g, self.split.fov
                )
            else:
                j = order[(torch.arange(self.batch_size) + i * self.batch_size) % len(order)]
                xb, yb = self.split.images[j], self.split.masks[j]
            x = self.data.normalize(xb.to(self.device))  # (B, C, P, P)
            x, y = augment_pair(x, yb.to(self.device), generator=g, **self.aug)
            yield x, self._target(y.round())

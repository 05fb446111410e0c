"""Recipes for MedMNIST classifiers: build under a seed, train with the `standard` or
`paper` recipe, and the budgets of chapter 01's teaching experiments.

- `paper`: the MedMNIST v2 protocol (Yang 2023; experiments/MedMNIST2D): ResNet-18, 100
  epochs, batch 128 keeping the last partial batch, Adam lr 1e-3 (no weight decay), lr x0.1
  at 50% and 75% of the epochs, no augmentation, Normalize(0.5, 0.5), fp32 (no mixed
  precision), the epoch with the best validation AUC. Known deviations: our shuffling order
  and RNG; the best epoch's weights are restored (one version of MedMNIST's script keeps a
  reference to the live model, so tests the last epoch); at >= 128 px grey images go through
  a 1-channel stem (MedMNIST copies them to RGB) and are read from the native-size files
  (MedMNIST v2's 224 px results upsample the 28 px images).
- `standard`: the suite's CPU recipe: the compact residual net, AdamW + 1 warm-up epoch +
  cosine, batched augmentation, and the loss weighting, label smoothing and epoch budget
  chosen on VALIDATION data by bench/recipe_selection.py (3 seeds, 3 datasets; see
  `STANDARD_CHOICES` and bench/README.md). The test split played no part in any choice.

Explained in chapter 01.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medlib.data.augment import standard_2d
from medlib.data.batches import TensorLoader
from medlib.data.heldout import refuse_sealed
from medlib.data.medmnist import Split
from medlib.data.registry import DatasetInfo
from medlib.env import derive_seed
from medlib.evaluation import evaluate
from medlib.metrics.classification import BINARY, MULTILABEL
from medlib.models.cnn import build_model
from medlib.train import History, fit

RECIPES = ("standard", "paper")

# The standard recipe's knobs per task group, as decided on validation by
# bench/recipe_selection.py (results/recipe_selection.json holds every run and the rule):
# the best mean validation (AUC + ACC) / 2 at the last epoch over 3 seeds, then flip TTA if it
# raised that score. Binary tasks: PneumoniaMNIST and BreastMNIST; other: RetinaMNIST.
STANDARD_CHOICES = {
    "binary": {"class_weights": "none", "label_smoothing": 0.1, "budget": 48_000, "tta": True},
    "other": {"class_weights": "none", "label_smoothing": 0.1, "budget": 24_000, "tta": False},
}

# Chapter 01's teaching experiments per profile: epochs of the main model (None = the
# recipe's own budget); the batch-norm learning-rate sweep (training images, epochs, learning
# rates, seeds); the regularisation and imbalance studies (epochs, training images).
CHAPTER_BUDGETS = {
    "smoke": {"epochs": 2, "demo_epochs": 1, "demo_train": 256,
              "bn_train": 256, "bn_epochs": 1, "bn_lrs": (0.03, 1.0), "bn_seeds": 1},
    "standard": {"epochs": None, "demo_epochs": 15, "demo_train": None,
                 "bn_train": 1000, "bn_epochs": 2, "bn_lrs": (0.01, 0.03, 0.1, 0.3, 1.0), "bn_seeds": 3},
    "paper": {"epochs": 100, "demo_epochs": 25, "demo_train": None,
              "bn_train": 2000, "bn_epochs": 3, "bn_lrs": (0.01, 0.03, 0.1, 0.3, 1.0, 3.0), "bn_seeds": 3},
}


def task_group(task: str) -> str:
    return "binary" if task == BINARY else "other"


def balanced_class_weights(split: Split) -> torch.Tensor:
    """w_k = N / (K * n_k): each class contributes equally to the loss (K classes).
    Multi-label: BCE's pos_weight, negatives / positives per label."""
    counts = torch.as_tensor(split.class_counts(), dtype=torch.float32).clamp(min=1)
    if split.info.multilabel:
        return (len(split) - counts) / counts
    return counts.sum() / (len(counts) * counts)


def standard_epochs(n_train: int, images: int = 24_000, lo: int = 6, hi: int = 40) -> int:
    """Epochs so that about `images` training images are seen, clipped to [lo, hi]."""
    return int(min(hi, max(lo, round(images / max(n_train, 1)))))


def budget_epochs(train: Split) -> int:
    """The standard recipe's epochs for a training split: its task's image budget (48 000 images
    seen for a binary task, 24 000 otherwise), at most budget / 600 epochs. Chapter 07's ViT uses
    the same, so both models see the same images."""
    budget = STANDARD_CHOICES[task_group(train.info.task)]["budget"]
    return standard_epochs(len(train), budget, hi=budget // 600)


def recipe(name: str, train: Split, epochs: int | None = None) -> dict:
    """`train_classifier()` keyword arguments (epochs included) for recipe `name`."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid choices: {', '.join(map(repr, RECIPES))}")
    if name == "paper":
        return dict(epochs=epochs or 100, optimizer="adam", lr=1e-3, weight_decay=0.0,
                    schedule="multistep", milestones=(0.5, 0.75), batch_size=128, augment=None,
                    drop_last=False, amp=False)  # as MedMNIST's DataLoader and fp32 training
    small = len(train) < 1000
    choice = STANDARD_CHOICES[task_group(train.info.task)]
    return dict(epochs=epochs or budget_epochs(train), optimizer="adamw",
                lr=2e-3 if small else 3e-3, weight_decay=5e-4, schedule="cosine", warmup_epochs=1,
                batch_size=32 if small else 128, augment=standard_2d(),
                class_weights=balanced_class_weights(train) if choice["class_weights"] == "balanced" else None,
                label_smoothing=choice["label_smoothing"])


def evaluation_tta(name: str, task: str) -> bool:
    """Whether recipe `name` averages predictions over the horizontal flip (decided on validation
    for `standard`; MedMNIST's protocol, `paper`, does not)."""
    return name == "standard" and STANDARD_CHOICES[task_group(task)]["tta"]


def task_loss(task: str, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0):
    """The MedMNIST loss for a task: BCE-with-logits for multi-label, cross-entropy otherwise.

    With class weights w, PyTorch's weighted cross-entropy divides by the sum of the weights
    of the batch's labels, Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i}, not by the batch size."""
    if task == MULTILABEL:
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits, y.float(), pos_weight=class_weights)
    return lambda logits, y: F.cross_entropy(logits, y, weight=class_weights, label_smoothing=label_smoothing)


def build_seeded(factory, *args, run=None, seed: int | None = None, label: str = "model", **kwargs) -> torch.nn.Module:
    """`factory(*args, **kwargs)` built under a seed: with `run`, `run.build` (the run's seed,
    recorded in results.json); without, `seed` with the same derivation (scripts and tests)."""
    if run is not None:
        return run.build(factory, *args, label=label, seed=seed, **kwargs)
    if seed is None:
        raise ValueError(f"building {label!r} needs a run or a seed")
    torch.manual_seed(derive_seed(seed, label))
    return factory(*args, **kwargs)


def build_classifier(name: str, info: DatasetInfo, size: int = 28, *, run=None, seed: int | None = None,
                     label: str = "model", channels_last: bool = True) -> torch.nn.Module:
    """A classifier for a MedMNIST dataset, built under a seed (`build_seeded`)."""
    model = build_seeded(build_model, name, info.n_channels, info.n_classes, size, run=run, seed=seed, label=label)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def train_classifier(model: torch.nn.Module, train: Split | TensorLoader, val: Split, *, epochs: int,
                     batch_size: int = 128, augment=None, class_weights: torch.Tensor | None = None,
                     label_smoothing: float = 0.0, drop_last: bool | None = None, seed: int = 0,
                     device=None, amp: str | bool = "auto", select_by: str = "auc", mode: str = "max", checkpoint=None,
                     resume: bool = False, progress: bool = True, **optim) -> History:
    """Train a classifier on a MedMNIST split and keep its best validation-`select_by` epoch
    (`mode` "max", or "min" for e.g. the validation loss).

    `train` is a `Split` (batched here: shuffled with `seed`, augmented, the last partial
    batch dropped when the split holds more than one batch unless `drop_last` says) or a
    ready `TensorLoader` (e.g. with resampling weights). `optim` goes to `SupervisedStep`."""
    refuse_sealed(train, val)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if isinstance(train, Split):
        drop = len(train) > batch_size if drop_last is None else drop_last
        train = TensorLoader(train, batch_size, shuffle=True, device=device, augment=augment, drop_last=drop,
                             seed=seed)
    weights = class_weights.to(device) if class_weights is not None else None
    use_amp = (amp is True or amp == "auto") and device.type == "cuda"
    return fit(model, train, epochs=epochs, loss_fn=task_loss(val.info.task, weights, label_smoothing),
               evaluate=lambda: evaluate(model, val, device, amp=use_amp), select_by=select_by, mode=mode, device=device,
               amp=amp, checkpoint=checkpoint, resume=resume, progress=progress, **optim)

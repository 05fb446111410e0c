"""Recipes for 3D MedMNIST volume classifiers (chapter 02): the models of `medlib.models.rnn`
built under a seed, trained with `recipes.classification.train_classifier` (the same loop,
loss and best-validation-epoch rule as chapter 01).

`standard` (2 CPU cores, <= 5 min per chapter at 28³): AdamW, one warm-up epoch then cosine,
weight decay 5e-4, label smoothing 0.1 (chapter 01's choices), batch 32, and — chosen on
VALIDATION by bench/volume_selection.py (2 seeds x 2 datasets, never on test; `STANDARD_CHOICES`)
— the number of training volumes seen, the 3D augmentation (`AUGMENTATIONS`), whether the loss
is class-weighted, and the slice encoder's strides. The imbalance of VesselMNIST3D (11%
positive) is handled by that loss choice and, whatever the loss, by reporting balanced
accuracy, sensitivity and specificity beside MedMNIST's ACC, and an operating point chosen on
validation (chapter 02).

`paper` (a GPU): the same models and loss, 100 epochs, the MedMNIST v2 3D protocol's
optimiser (Adam 1e-3, x0.1 at 50% and 75%, batch 32 as its 3D script). There is no
published 64³ table: `paper` at 64³ makes ours.
"""

from __future__ import annotations

import torch

from medlib.data.augment import standard_3d
from medlib.data.medmnist import Split
from medlib.data.registry import DatasetInfo
from medlib.models.rnn import build_model
from medlib.recipes.classification import balanced_class_weights, build_seeded, standard_epochs

RECIPES = ("standard", "paper")

# 3D augmentations (B, C, D, H, W): "full" adds a small rotation/shift/scale (one trilinear
# resampling per batch) to "light" (a flip along each axis, brightness/contrast).
AUGMENTATIONS = {"full": standard_3d, "light": lambda: standard_3d(degrees=0, translate=0, scale=(1.0, 1.0))}

# Decided on validation by bench/volume_selection.py (results/volume_selection.json): training
# volumes seen in total (epochs = volumes / the split's size), the augmentation, balanced class
# weights in the loss, and model keyword arguments per model name.
STANDARD_CHOICES = {"volumes": 12_000, "augment": "light", "class_weights": False, "model_kw": {"slicernn": {"slab": 3}}}

# The chapter's experiments per profile: epochs of every model (None: the recipe's budget),
# the training subset, and which ablations run (each one more model at the chapter's budget).
CHAPTER_BUDGETS = {
    "smoke": {"epochs": 1, "max_train": 64, "max_eval": 64, "ablations": ("step 2", "unidirectional"),
              "vanishing_seeds": 1},
    "standard": {"epochs": None, "ablations": ("step 2", "axis 1", "unidirectional"), "vanishing_seeds": 3},
    "paper": {"epochs": 100, "ablations": ("step 2", "step 4", "axis 1", "axis 2", "unidirectional", "lstm", "slab 1"),
              "vanishing_seeds": 3},
}

# Each ablation: the SliceRNN keyword arguments it changes.
ABLATIONS = {
    "step 2": {"step": 2},
    "step 4": {"step": 4},
    "axis 1": {"axis": 1},
    "axis 2": {"axis": 2},
    "unidirectional": {"bidirectional": False},
    "lstm": {"cell": "lstm"},
    "mean pooling": {"pooling": "mean"},
    "slab 1": {"slab": 1},
}


def recipe(name: str, train: Split, epochs: int | None = None) -> dict:
    """`train_classifier()` keyword arguments (epochs included) for recipe `name`."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid choices: {', '.join(map(repr, RECIPES))}")
    c = STANDARD_CHOICES
    weights = balanced_class_weights(train) if c["class_weights"] else None
    augment = AUGMENTATIONS[c["augment"]]()
    if name == "paper":
        return dict(epochs=epochs or 100, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="multistep",
                    milestones=(0.5, 0.75), batch_size=32, augment=augment, label_smoothing=0.1,
                    class_weights=weights)
    return dict(epochs=epochs or standard_epochs(len(train), c["volumes"], lo=3, hi=40), optimizer="adamw",
                lr=3e-3, weight_decay=5e-4, schedule="cosine", warmup_epochs=1, batch_size=32,
                augment=augment, label_smoothing=0.1, class_weights=weights)


def build_volume_classifier(name: str, info: DatasetInfo, size: int = 28, *, run=None, seed: int | None = None,
                            label: str = "model", **kwargs) -> torch.nn.Module:
    """A volume classifier (`medlib.models.rnn.MODELS`) built under a seed: with `run`,
    `run.build` (the run's seed, recorded); without, `seed` (the same derivation). The model
    keyword arguments chosen on validation (`STANDARD_CHOICES["model_kw"][name]`) apply unless
    `kwargs` override them."""
    kwargs = {**STANDARD_CHOICES["model_kw"].get(name, {}), **kwargs}
    return build_seeded(build_model, name, info.n_channels, info.n_classes, size, run=run, seed=seed, label=label,
                        **kwargs)

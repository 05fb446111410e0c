"""Chapter 07's recipe for a Vision Transformer trained from scratch on small images, its
ingredients (each can be left out for the ablation), and the chapter's budgets.

The ViT is trained by the same `train_classifier` as chapter 01's CNN (`medlib.train.fit`,
`SupervisedStep`, the best validation-AUC epoch); what differs is the recipe that small data
needs (Touvron et al., 2021; Steiner et al., 2022):

- augmentation: flips, small rotations/shifts/scales, brightness/contrast (`standard_2d`);
- label smoothing 0.1;
- linear warm-up then cosine decay of the learning rate;
- stochastic depth (`drop_path`, rising linearly with depth to its maximum);
- weight decay on the weight matrices only (not on norms, biases, embeddings).

`STANDARD` holds the model size and these settings as bench/vit_selection.py decided them on
VALIDATION data (3 seeds; bench/results/vit_selection.json); the test split played no part.
"""

from __future__ import annotations

from medlib.data.augment import standard_2d
from medlib.data.medmnist import Split
from medlib.recipes.classification import budget_epochs
from medlib.recipes.classification import recipe as cnn_recipe

INGREDIENTS = ("augmentation", "label smoothing", "warm-up + cosine", "stochastic depth", "weight decay")

# the model (medlib.models.vit.ViT keyword arguments at 28 px) and the optimisation
STANDARD = {"patch": 7, "model": {"dim": 128, "depth": 6, "heads": 4, "mlp_ratio": 2.0, "drop_path": 0.1},
            "lr": 1e-3, "weight_decay": 0.05, "label_smoothing": 0.1, "warmup_epochs": 2, "batch_size": 128}

# Budgets per profile: epochs of every model (ViT and CNN alike; None = chapter 01's image budget,
# `main_epochs`), the training fractions of the data-hunger curve, the fraction the ablations
# train on, how many patch sizes are compared (`patch_sizes`), attention maps shown.
CHAPTER_BUDGETS = {
    "smoke": {"epochs": 2, "max_train": 256, "max_eval": 128, "fractions": (0.25, 1.0), "ablation_fraction": 0.25,
              "n_patch_sizes": 2, "n_maps": 4},
    "standard": {"epochs": None, "fractions": (0.1, 0.25, 0.5, 1.0), "ablation_fraction": 0.1, "n_patch_sizes": 3,
                 "n_maps": 8},
    "paper": {"epochs": 100, "fractions": (0.1, 0.25, 0.5, 1.0), "ablation_fraction": 0.1, "n_patch_sizes": 3,
              "n_maps": 8},
}
TTA = True  # flip test-time augmentation for the ViT: decided on validation (bench/vit_selection.py)


def patch_for(size: int) -> int:
    """The recipe's patch at an image size: 7 at 28 px (4 x 4 patches, chosen on validation),
    else size / 8 (8 x 8 patches; not selected, a default)."""
    return STANDARD["patch"] if size == 28 else max(size // 8, 1)


def patch_sizes(size: int, profile: str) -> tuple[int, ...]:
    """The patch sizes chapter 07 compares: 7, 4, 2 at 28 px; size/4, /8, /16 otherwise (the
    profile's `n_patch_sizes` first ones)."""
    sizes = (7, 4, 2) if size == 28 else tuple(size // g for g in (4, 8, 16) if size % g == 0)
    return sizes[:CHAPTER_BUDGETS[profile]["n_patch_sizes"]]


def main_epochs(train: Split) -> int:
    """Chapter 01's image budget for the task (48 000 images seen for a binary task, 24 000
    otherwise, at most budget / 600 epochs): the ViT and the CNN see the same images."""
    return budget_epochs(train)


def model_kwargs(without: tuple[str, ...] = (), **overrides) -> dict:
    """ViT keyword arguments of the standard recipe (`drop_path` 0 without stochastic depth)."""
    _check(without)
    kw = {**STANDARD["model"], **overrides}
    if "stochastic depth" in without:
        kw["drop_path"] = 0.0
    return kw


def training_kwargs(train: Split, epochs: int, without: tuple[str, ...] = ()) -> dict:
    """`train_classifier()` keyword arguments of the ViT recipe, minus the ingredients named in
    `without` (each one of INGREDIENTS). The batch follows `batch_for`."""
    _check(without)
    return dict(epochs=epochs, optimizer="adamw", lr=STANDARD["lr"],
                weight_decay=0.0 if "weight decay" in without else STANDARD["weight_decay"],
                schedule="constant" if "warm-up + cosine" in without else "cosine",
                warmup_epochs=0 if "warm-up + cosine" in without else min(STANDARD["warmup_epochs"], epochs / 4),
                batch_size=batch_for(len(train)),
                augment=None if "augmentation" in without else standard_2d(),
                label_smoothing=0.0 if "label smoothing" in without else STANDARD["label_smoothing"])


def batch_for(n: int) -> int:
    """The largest batch of 128, 64 and 32 that still gives >= 30 updates per epoch over n images
    (32 below 960): a subset keeps the full split's number of updates per epoch down to 1/4 of it,
    where chapter 01's rule (32 under 1000 images, else 128) would give a quarter subset 9."""
    return next((b for b in (STANDARD["batch_size"], 64, 32) if n // b >= 30), 32)


def cnn_kwargs(train: Split, epochs: int) -> dict:
    """Chapter 01's `standard` CNN recipe with the ViT's epochs (the same images seen by both)
    and the same batch rule (`batch_for`)."""
    return {**cnn_recipe("standard", train, epochs=epochs), "batch_size": batch_for(len(train))}


def _check(without) -> None:
    bad = [w for w in without if w not in INGREDIENTS]
    if bad:
        raise ValueError(f"unknown ingredient(s) {bad}; valid: {', '.join(map(repr, INGREDIENTS))}")

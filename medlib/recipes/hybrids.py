"""Recipes for chapter 08 (hybrids): handcrafted features of a MedMNIST split (in parallel),
classical learners on features, and the two ways to fuse deep and handcrafted information
(a network's features come from `medlib.transfer.features`).

- early fusion: one classifier on [handcrafted features, network features] side by side;
- late fusion: two classifiers, their probabilities averaged with a weight chosen on
  validation (`late_fusion_weight`).

Every choice (the learner's settings, the late-fusion weight, the ablated families) is made on
the validation split; test is scored once. Explained in chapter 08.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medlib.data.medmnist import Split
from medlib.data.registry import DatasetInfo
from medlib.features import FAMILIES, family_of, feature_matrix
from medlib.metrics.classification import classification_metrics
from medlib.models.hybrid import conv_stem_vit
from medlib.recipes import classification as rc
from medlib.recipes import vit as rv

# The chapter's budgets per profile: `images` seen by every network (the same for each; epochs
# = images / training split), and the subsets smoke trains and evaluates on.
CHAPTER_BUDGETS = {
    "smoke": {"epochs": 1, "max_train": 256, "max_eval": 128, "images": None, "volumes": None},
    "standard": {"epochs": None, "images": 20_000, "volumes": 12_000},  # volumes: chapter 02's budget
    "paper": {"epochs": 100, "images": None, "volumes": None},
}

# The conv-stem ViT at 28 px: sized to chapter 01's CNN (0.28 M vs 0.26 M parameters), the
# transformer part as chapter 07's recipe (4 heads, drop path 0.1) with two blocks. Matched on
# parameters, not tuned: no other setting was tried on validation (exercise 3 tries 4 blocks).
HYBRID = {"width": 16, "dim": 96, "depth": 2, "heads": 4, "drop_path": 0.1}
# The TransUNet's bottleneck on chapter 05's U-Net (its recipe's width and depth): two blocks of
# width 128, four heads. One setting, chosen before any run; the U-Net it extends is unchanged.
TRANSUNET = {"dim": 128, "layers": 2, "heads": 4}
NETWORKS_2D = ("CNN", "ViT", "conv-stem ViT")
NETWORKS_3D = ("CNN+RNN", "3D CNN")  # chapter 02's slice reader and its 3D CNN


def epochs_for(train: Split, images: int | None, epochs: int | None = None) -> int:
    """`epochs` if given, else about `images` images seen (at least 1), else chapter 01's budget."""
    if epochs:
        return epochs
    return max(1, round(images / len(train))) if images else rc.budget_epochs(train)


def build_network(name: str, info: DatasetInfo, size: int = 28, *, run=None, seed: int | None = None) -> nn.Module:
    """One of NETWORKS_2D or NETWORKS_3D under the run's seed: chapter 01's CompactResNet,
    chapter 07's ViT (its recipe's patch), the conv-stem ViT (`HYBRID`); chapter 02's SliceRNN
    and Small3DCNN (its recipe's choices)."""
    if name == "CNN":
        return rc.build_classifier("compactresnet", info, size, run=run, seed=seed, label=name)
    if name in NETWORKS_3D:
        from medlib.recipes.volumes import build_volume_classifier

        return build_volume_classifier("slicernn" if name == "CNN+RNN" else "cnn3d", info, size, run=run, seed=seed,
                                       label=name)
    if name not in NETWORKS_2D:
        raise ValueError(f"unknown network {name!r}; valid choices: {', '.join(map(repr, NETWORKS_2D + NETWORKS_3D))}")
    from medlib.models.vit import vit

    factory, kw = (vit, {"patch": rv.patch_for(size), **rv.model_kwargs()}) if name == "ViT" else (conv_stem_vit, HYBRID)
    return rc.build_seeded(factory, info.n_channels, info.n_classes, size, run=run, seed=seed, label=name, **kw)


def train_network(name: str, model: nn.Module, train: Split, val: Split, *, epochs: int, device=None,
                  seed: int = 0, progress: bool = False):
    """Train with its family's recipe at `epochs`: chapter 01's for the CNN, chapter 07's
    transformer recipe for the ViT and the conv-stem ViT (same batch rule for all three)."""
    if name in NETWORKS_3D:
        from medlib.recipes.volumes import recipe

        kw = recipe("standard", train, epochs)
    else:
        kw = rv.cnn_kwargs(train, epochs) if name == "CNN" else rv.training_kwargs(train, epochs)
    return rc.train_classifier(model, train, val, device=device, seed=seed, progress=progress, **kw)


def unetr_kwargs(side: int) -> dict:
    """MONAI's UNETR for 2D `side`-px inputs, scaled down for a few hundred images: its twelve
    transformer blocks at width 96 (4 heads), decoder features 8, batch norm (1.7 M parameters;
    the paper's 768-wide model has 88 M)."""
    return {"img_size": side, "feature_size": 8, "hidden_size": 96, "mlp_dim": 384, "num_heads": 4,
            "spatial_dims": 2, "norm_name": "batch"}


def split_features(split: Split, families=FAMILIES, n_jobs: int | None = None) -> tuple[np.ndarray, list[str]]:
    """(N, F) handcrafted features of a MedMNIST split (2D images or 3D volumes) and their
    names, computed in `n_jobs` processes (default: torch's thread count) in chunks."""
    from joblib import Parallel, delayed

    images = split.images.numpy()
    dims = images.ndim - 2  # (N, C, H, W) or (N, C, D, H, W)
    n_jobs = n_jobs or (max(torch.get_num_threads(), 1) if len(images) >= 1000 else 1)  # workers cost ~5 s to start
    chunks = np.array_split(np.arange(len(images)), max(1, min(len(images), 4 * n_jobs)))
    parts = Parallel(n_jobs=n_jobs)(delayed(feature_matrix)(images[c], dims, families) for c in chunks if len(c))
    return np.concatenate([p[0] for p in parts]), parts[0][1]


def columns(names: list[str], families) -> list[int]:
    """Indices of the features that belong to `families` (see `medlib.features.family_of`)."""
    return [i for i, n in enumerate(names) if family_of(n) in families]


def labels_of(split: Split) -> np.ndarray:
    """(N,) integer labels of a single-label split."""
    if split.info.task == "multi-label, binary-class":
        raise ValueError("fusion recipes handle single-label tasks; this split is multi-label")
    return split.labels.numpy().reshape(len(split), -1)[:, 0].astype(np.int64)


def feature_learner(kind: str = "gbm", seed: int = 0, **kw):
    """A scikit-learn classifier for feature vectors: "gbm" (histogram gradient boosting, the
    strong tabular default) or "logistic" (standardised, L2-regularised logistic regression)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "gbm":
        return HistGradientBoostingClassifier(random_state=seed, **{"max_iter": 200, "learning_rate": 0.05, **kw})
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, **{"C": 1.0, **kw}))
    raise ValueError(f"unknown learner {kind!r}; valid choices: 'gbm', 'logistic'")


def fit_scores(learner, X_train, y_train, *Xs) -> list[np.ndarray]:
    """Fit on the training features; (N, K) class probabilities for each of `Xs`.

    scikit-learn's OpenMP runtime runs single-threaded here: beside torch's own OpenMP runtime
    the two contend, and one thread was faster (gradient boosting on PneumoniaMNIST's features:
    2.0 s vs 3.6 s on 2 cores, the same probabilities)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="openmp"):
        learner.fit(X_train, y_train)
        return [learner.predict_proba(X) for X in Xs]


def late_fusion_weight(p_a: np.ndarray, p_b: np.ndarray, y: np.ndarray, task: str, n_classes: int,
                       grid=None, metric: str = "auc") -> tuple[float, dict[float, float]]:
    """The weight w of w·p_a + (1 − w)·p_b with the best validation `metric` (ties: the w closest
    to 0.5) and the metric at every w of the grid (default 0, 0.05, ..., 1)."""
    grid = np.linspace(0, 1, 21) if grid is None else grid
    curve = {float(w): classification_metrics(y, w * p_a + (1 - w) * p_b, task, n_classes)[metric] for w in grid}
    best = max(curve.values())
    w = min((w for w, v in curve.items() if v >= best - 1e-12), key=lambda w: abs(w - 0.5))
    return w, curve


def scores_metrics(y: np.ndarray, p: np.ndarray, split: Split) -> dict[str, float]:
    """MedMNIST's AUC and ACC (and the rest of `classification_metrics`) of (N, K) probabilities."""
    return classification_metrics(y, p, split.info.task, split.info.n_classes)

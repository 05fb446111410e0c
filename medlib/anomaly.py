"""Anomaly detection without abnormal images (chapter 03).

The rule this module enforces: models are trained, and every choice (the epoch, the decision
threshold) is made, on NORMAL images only. `normal_images` is the only way the chapter's
anomaly path gets images, and it returns those of the normal class alone; thresholds come from
normal validation scores (`threshold_at_specificity`). Abnormal images meet the models once, in
the final evaluation on the test split, where `anomaly_metrics` scores them.
Anomaly scores: higher = more anomalous.
"""

from __future__ import annotations

import numpy as np
import torch

from medlib.data.heldout import refuse_sealed
from medlib.metrics.classification import binary_auc, bootstrap_ci


def normal_label(info) -> int:
    """The class id whose name says "normal" (PneumoniaMNIST 0 "normal", BreastMNIST 1
    "normal, benign"); a clear error for datasets without one."""
    hits = [k for k, name in enumerate(info.labels) if name.lower().startswith("normal")]
    if len(hits) != 1:
        raise ValueError(f"{info.flag} has no single 'normal' class (labels: {', '.join(info.labels)}); anomaly "
                         "detection needs one - use pneumoniamnist or breastmnist")
    return hits[0]


def normal_images(split, normal: int) -> torch.Tensor:
    """The uint8 images of class `normal` in a training or validation split (never the test split)."""
    refuse_sealed(split, use="anomaly-detection training or selection")
    keep = split.labels[:, 0] == normal
    if not keep.any():
        raise ValueError(f"the {split.name} split has no image of class {normal}")
    return split.images[keep]


def knn_score(bank: torch.Tensor, feats: torch.Tensor, k: int = 5, exclude_self: bool = False) -> torch.Tensor:
    """Mean Euclidean distance from each row of `feats` (N, F) to its k nearest rows of `bank`
    (M, F). With `exclude_self` (feats is bank), each row's zero distance to itself is skipped."""
    d = torch.cdist(feats.float(), bank.float())  # (N, M)
    return d.topk(k + int(exclude_self), dim=1, largest=False).values[:, int(exclude_self):].mean(1)


def threshold_at_specificity(normal_scores, specificity: float = 0.95) -> float:
    """The score above which an image is called abnormal, so that a share `specificity` of
    these NORMAL scores falls below it (a quantile: no abnormal image needed)."""
    s = np.asarray(normal_scores, dtype=float)
    if not 0 < specificity < 1:
        raise ValueError(f"specificity must be in (0, 1), got {specificity}")
    return float(np.quantile(s, specificity))


def anomaly_metrics(is_abnormal, scores, threshold: float | None = None, bootstrap: int = 1000,
                    seed: int = 0) -> dict:
    """ROC AUC with a percentile-bootstrap 95% CI, and sensitivity/specificity at `threshold`."""
    y, s = np.asarray(is_abnormal).astype(int).ravel(), np.asarray(scores, dtype=float).ravel()
    out = {"auc": binary_auc(y, s)}
    out["auc_lo"], out["auc_hi"] = bootstrap_ci(binary_auc, y, s, n=bootstrap, seed=seed)
    if threshold is not None:
        pred = s > threshold
        out.update(threshold=float(threshold), sensitivity=float(pred[y == 1].mean()),
                   specificity=float((~pred[y == 0]).mean()))
    return out

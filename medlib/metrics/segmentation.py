"""Segmentation metrics by hand: Dice/F1, IoU, sensitivity, specificity, accuracy,
pixel-wise AUC and HD95, per image, optionally inside a field-of-view (FOV) mask.

Dice is the F1 score of the foreground pixels; one name (`dice`) is used for both.
Conventions: `pred` and `target` are binary maps (N, H, W) (bool or 0/1), `scores` are
probabilities (N, H, W), `fov` is an optional (N, H, W) mask; pixels outside it are
ignored. Per-image functions return a tensor (N,); `pooled=True` variants count every
pixel of every image together (the convention of the DRIVE literature). Multi-class label
maps are scored per class with `dice_per_class`.
Tested against MONAI (DiceMetric, MeanIoU, HausdorffDistanceMetric) and scikit-learn.
Explained in chapter 05.
"""

from __future__ import annotations

import numpy as np
import torch

from medlib.metrics.classification import binary_auc
from medlib.metrics.common import as_nhw as _as_nhw


def confusion(pred, target, fov=None) -> dict[str, torch.Tensor]:
    """Per-image counts tp, fp, fn, tn, each (N,) float64."""
    p, t = _as_nhw(pred).bool(), _as_nhw(target).bool()
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    f = torch.ones_like(t) if fov is None else _as_nhw(fov).bool().expand_as(t)
    count = lambda m: (m & f).flatten(1).sum(1).double()  # noqa: E731
    return {"tp": count(p & t), "fp": count(p & ~t), "fn": count(~p & t), "tn": count(~p & ~t)}


def _ratio(num: torch.Tensor, den: torch.Tensor, empty: float) -> torch.Tensor:
    """num / den, with `empty` where den == 0 (e.g. both masks empty)."""
    return torch.where(den > 0, num / den.clamp(min=1e-12), torch.full_like(num, empty))


def _maybe_pool(c: dict[str, torch.Tensor], pooled: bool) -> dict[str, torch.Tensor]:
    return {k: v.sum(0, keepdim=True) for k, v in c.items()} if pooled else c


def dice(pred, target, fov=None, pooled=False) -> torch.Tensor:
    """Dice = F1 = 2 TP / (2 TP + FP + FN); 1 when both masks are empty."""
    c = _maybe_pool(confusion(pred, target, fov), pooled)
    d = _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"], 1.0)
    # target empty but prediction not: 0 (as MONAI with ignore_empty=False)
    return d


def iou(pred, target, fov=None, pooled=False) -> torch.Tensor:
    """Intersection over union (Jaccard) = TP / (TP + FP + FN)."""
    c = _maybe_pool(confusion(pred, target, fov), pooled)
    return _ratio(c["tp"], c["tp"] + c["fp"] + c["fn"], 1.0)


def sensitivity(pred, target, fov=None, pooled=False) -> torch.Tensor:
    """Sensitivity (recall) = TP / (TP + FN); 1 for an image whose truth has no foreground
    (there is nothing to miss), whatever the prediction, so such images raise the mean of
    per-image sensitivities. Their false positives show in Dice, IoU and specificity."""
    c = _maybe_pool(confusion(pred, target, fov), pooled)
    return _ratio(c["tp"], c["tp"] + c["fn"], 1.0)


def specificity(pred, target, fov=None, pooled=False) -> torch.Tensor:
    """Specificity = TN / (TN + FP); 1 for an image with no background."""
    c = _maybe_pool(confusion(pred, target, fov), pooled)
    return _ratio(c["tn"], c["tn"] + c["fp"], 1.0)


def accuracy(pred, target, fov=None, pooled=False) -> torch.Tensor:
    """Pixel accuracy = (TP + TN) / all pixels (inside the FOV)."""
    c = _maybe_pool(confusion(pred, target, fov), pooled)
    return _ratio(c["tp"] + c["tn"], c["tp"] + c["tn"] + c["fp"] + c["fn"], 1.0)


def auc(scores, target, fov=None) -> float:
    """Pixel-wise ROC AUC over all given pixels (inside the FOV), NaN when one class is absent:
    P(score of a random vessel pixel > score of a random background pixel), by the rank-sum
    formula of `medlib.metrics.classification.binary_auc`."""
    s, t = _as_nhw(scores).double(), _as_nhw(target).bool()
    if fov is not None:
        f = _as_nhw(fov).bool().expand_as(t)
        s, t = s[f], t[f]
    t = t.flatten().cpu().numpy()
    if t.all() or not t.any():
        return float("nan")
    return binary_auc(t, s.flatten().cpu().numpy())


def auc_per_image(scores, target, fov=None) -> torch.Tensor:
    """Pixel AUC of each image separately, (N,)."""
    s, t = _as_nhw(scores), _as_nhw(target)
    f = None if fov is None else _as_nhw(fov).expand_as(t)
    return torch.tensor([auc(s[i], t[i], None if f is None else f[i]) for i in range(len(s))])


def edges(mask: torch.Tensor) -> torch.Tensor:
    """Boundary pixels: mask minus its erosion by a 3×3 cross (outside the image = 0)."""
    m = _as_nhw(mask).bool()
    p = torch.nn.functional.pad(m.float(), (1, 1, 1, 1)).bool()  # (N, H+2, W+2)
    eroded = m & p[:, :-2, 1:-1] & p[:, 2:, 1:-1] & p[:, 1:-1, :-2] & p[:, 1:-1, 2:]
    return m & ~eroded


def hd95(pred, target, percentile: float = 95.0) -> torch.Tensor:
    """95th-percentile symmetric Hausdorff distance in pixels, per image (N,).

    For every boundary pixel of one mask, the Euclidean distance to the nearest boundary
    pixel of the other; HD95 = max of the two directed 95th percentiles.

    Empty masks: HD95 is undefined. It is NaN when both masks are empty and inf when
    exactly one is (an empty prediction of a non-empty truth, or the reverse: the distance
    to an empty set). MONAI's HausdorffDistanceMetric returns NaN in all three cases; the
    finite values agree. A mean over images must say how many were left out: `summarize`
    reports it as `hd95_undefined`.
    """
    from scipy.ndimage import distance_transform_edt

    ep, et = edges(pred).cpu().numpy(), edges(target).cpu().numpy()
    out = []
    for a, b in zip(ep, et):
        if not a.any() and not b.any():
            out.append(float("nan"))
            continue
        if not a.any() or not b.any():
            out.append(float("inf"))
            continue
        d_ab = distance_transform_edt(~b)[a]  # each pred edge → nearest target edge
        d_ba = distance_transform_edt(~a)[b]
        out.append(max(np.percentile(d_ab, percentile), np.percentile(d_ba, percentile)))
    return torch.tensor(out, dtype=torch.float64)


def best_threshold(scores, target, fov=None, grid: int = 99) -> float:
    """The threshold in (0, 1) that maximises pooled F1 (choose it on validation data)."""
    s, t = _as_nhw(scores), _as_nhw(target).bool()
    if fov is not None:
        f = _as_nhw(fov).bool().expand_as(t)
        s, t = s[f], t[f]
    thresholds = torch.linspace(0.01, 0.99, grid)
    # histogram trick: F1 at every threshold from two cumulative histograms
    bins = (s.float().clamp(0, 1) * 1000).long().clamp(max=999).flatten()
    pos = torch.bincount(bins[t.flatten()], minlength=1000).double()
    neg = torch.bincount(bins[~t.flatten()], minlength=1000).double()
    tp_at = pos.flip(0).cumsum(0).flip(0)  # tp if threshold at bin i: scores in bins >= i
    fp_at = neg.flip(0).cumsum(0).flip(0)
    idx = (thresholds * 1000).round().long()
    tp, fp = tp_at[idx], fp_at[idx]
    f1s = 2 * tp / (2 * tp + fp + (pos.sum() - tp)).clamp(min=1)
    return float(thresholds[int(f1s.argmax())])


def summarize(scores, target, fov=None, threshold: float = 0.5, with_hd95: bool = True):
    """All metrics for a set of images.

    Returns (per_image, pooled): per_image maps each short name (dice, iou, sens, spec,
    acc, auc, hd95) to a tensor (N,); pooled maps dice, iou, sens, spec, acc, auc to one
    float computed from all pixels counted together. HD95 cannot be pooled: pooled["hd95"]
    is the mean of the finite per-image values and pooled["hd95_undefined"] the number of
    images left out of it (an empty prediction or truth, see `hd95`), so that a model that
    predicts nothing on some images cannot look better by it.
    """
    s = _as_nhw(scores).float()
    t = _as_nhw(target).bool()
    p = s >= threshold
    per = {
        "dice": dice(p, t, fov),
        "iou": iou(p, t, fov),
        "sens": sensitivity(p, t, fov),
        "spec": specificity(p, t, fov),
        "acc": accuracy(p, t, fov),
        "auc": auc_per_image(s, t, fov),
    }
    if with_hd95:
        per["hd95"] = hd95(p if fov is None else p & _as_nhw(fov).bool(), t)
    pooled = {
        "dice": float(dice(p, t, fov, pooled=True)),
        "iou": float(iou(p, t, fov, pooled=True)),
        "sens": float(sensitivity(p, t, fov, pooled=True)),
        "spec": float(specificity(p, t, fov, pooled=True)),
        "acc": float(accuracy(p, t, fov, pooled=True)),
        "auc": auc(s, t, fov),
    }
    if with_hd95:
        finite = torch.isfinite(per["hd95"])
        pooled["hd95"] = float(per["hd95"][finite].mean()) if finite.any() else float("nan")
        pooled["hd95_undefined"] = int((~finite).sum())
    return per, pooled


def dice_per_class(pred, target, num_classes: int, fov=None, include_background: bool = False) -> torch.Tensor:
    """Dice of each class of integer label maps (e.g. the argmax of K class probabilities),
    per image: pred, target (N, H, W) class indices → (N, K), or (N, K - 1) without the
    background class 0. A class absent from both prediction and truth of an image scores 1,
    absent from the truth only 0 (as `dice`; MONAI DiceMetric with ignore_empty=False)."""
    p, t = _as_nhw(pred), _as_nhw(target)
    first = 0 if include_background else 1
    return torch.stack([dice(p == k, t == k, fov) for k in range(first, num_classes)], 1)


def thin_structure_mask(target, size: int = 3) -> torch.Tensor:
    """Foreground pixels that a morphological opening with a size×size square removes:
    thin vessels, small objects and narrow protrusions, (N, H, W) bool. Recall on this
    mask shows what a loss does to thin structures."""
    t = _as_nhw(target).float()[:, None]  # (N, 1, H, W)
    pad = size // 2
    eroded = -torch.nn.functional.max_pool2d(-t, size, 1, pad)
    opened = torch.nn.functional.max_pool2d(eroded, size, 1, pad)
    return (t > 0.5)[:, 0] & ~(opened > 0.5)[:, 0]


def as_record(per: dict[str, torch.Tensor], pooled: dict[str, float]) -> dict[str, float]:
    """The flat names results.json uses in every chapter: `<name>` is the mean over images
    (`dice` = mean per-image Dice), `<name>_pooled` counts every pixel together (the DRIVE
    literature's convention). HD95 is averaged where defined; `hd95_undefined` counts the
    rest, and a per-image AUC is undefined on an image without foreground (left out)."""
    out = {}
    for k, v in per.items():
        v = v.double()
        ok = torch.isfinite(v)
        out[k] = float(v[ok].mean()) if ok.any() else float("nan")
        if k == "hd95":
            out["hd95_undefined"] = int((~ok).sum())
    out.update({f"{k}_pooled": float(v) for k, v in pooled.items() if not k.startswith("hd95")})
    return out


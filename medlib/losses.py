"""Segmentation losses written by hand: BCE, soft Dice, BCE + Dice, focal, Tversky.

Every loss takes raw `logits` and a `target`:

- binary:      logits (B, 1, H, W), target (B, 1, H, W) or (B, H, W) with values in {0, 1};
- multi-class: logits (B, K, H, W), target (B, H, W) integer class indices.

Binary losses use the sigmoid, multi-class ones the softmax. Each is tested against its
MONAI counterpart, binary and multi-class (tests/test_seg_metrics_losses.py). Explained
in chapter 05.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _probs_and_onehot(logits: torch.Tensor, target: torch.Tensor):
    """Probabilities and a one-hot target with the same shape (B, K, H, W)."""
    if logits.shape[1] == 1:  # binary: sigmoid, target as a float map
        target = target.reshape(logits.shape).to(logits.dtype)
        return torch.sigmoid(logits), target
    onehot = F.one_hot(target.long().reshape(logits.shape[0], *logits.shape[2:]), logits.shape[1])
    return logits.softmax(1), onehot.movedim(-1, 1).to(logits.dtype)  # (B, K, H, W)


def bce(logits: torch.Tensor, target: torch.Tensor, pos_weight: float | None = None) -> torch.Tensor:
    """Pixel-wise (binary) cross-entropy: -[t log p + (1 - t) log(1 - p)], averaged.

    Written in the numerically stable form max(x, 0) - x t + log(1 + exp(-|x|)).
    """
    if logits.shape[1] > 1:
        return F.cross_entropy(logits, target.long().reshape(logits.shape[0], *logits.shape[2:]))
    t = target.reshape(logits.shape).to(logits.dtype)
    x = logits
    log1p_exp = torch.log1p(torch.exp(-x.abs()))  # log(1 + e^{-|x|})
    if pos_weight is None:
        loss = x.clamp(min=0) - x * t + log1p_exp
    else:  # weight the positive term: -w t log σ(x) - (1 - t) log(1 - σ(x))
        log_p = -(F.relu(-x) + log1p_exp)  # log σ(x)
        log_1mp = -(F.relu(x) + log1p_exp)  # log(1 - σ(x))
        loss = -(pos_weight * t * log_p + (1 - t) * log_1mp)
    return loss.mean()


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5, batch: bool = False
) -> torch.Tensor:
    """Soft Dice (Milletari 2016): 1 - (2 Σ p t + s) / (Σ p + Σ t + s), per image and class.

    `batch=True` sums over the whole batch first (one Dice per class), which is steadier
    when some images have no foreground.
    """
    p, t = _probs_and_onehot(logits, target)  # (B, K, H, W)
    dims = (0, 2, 3) if batch else (2, 3)
    inter = (p * t).sum(dims)
    denom = p.sum(dims) + t.sum(dims)
    return (1 - (2 * inter + smooth) / (denom + smooth)).mean()


def bce_dice(logits: torch.Tensor, target: torch.Tensor, w_bce: float = 1.0, w_dice: float = 1.0):
    """BCE (pixel-wise, calibrated) + soft Dice (overlap, insensitive to class balance)."""
    return w_bce * bce(logits, target) + w_dice * soft_dice_loss(logits, target)


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float | None = None
) -> torch.Tensor:
    """Focal loss (Lin 2017): -α_t (1 - p_t)^γ log p_t, averaged over pixels; γ = 0 gives BCE
    (binary) or cross-entropy (multi-class).

    p_t is the probability given to the true class; easy pixels (p_t → 1) are down-weighted.
    α_t = α for foreground pixels (any class > 0) and 1 - α for background (class 0), as
    in MONAI's FocalLoss. Multi-class: MONAI averages over the K class channels as well
    (zeros for the K - 1 wrong classes), so its value is this one divided by K.
    """
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] or None, got {alpha}")
    if logits.shape[1] == 1:
        t = target.reshape(logits.shape).to(logits.dtype)
        log_pt = -bce_map(logits, t)  # log p_t, stable
        is_fg = t
    else:
        labels = target.long().reshape(logits.shape[0], 1, *logits.shape[2:])  # (B, 1, H, W)
        log_pt = logits.log_softmax(1).gather(1, labels)  # log p of the true class
        is_fg = (labels > 0).to(logits.dtype)
    pt = log_pt.exp()
    loss = -((1 - pt) ** gamma) * log_pt
    if alpha is not None:
        loss = (alpha * is_fg + (1 - alpha) * (1 - is_fg)) * loss
    return loss.mean()


def bce_map(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE, -log p_t (same shape as logits)."""
    x, t = logits, target.reshape(logits.shape).to(logits.dtype)
    return x.clamp(min=0) - x * t + torch.log1p(torch.exp(-x.abs()))


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 1e-5,
) -> torch.Tensor:
    """Tversky loss (Salehi 2017): 1 - TP / (TP + α FP + β FN), soft counts per image.

    α weighs false positives, β false negatives; β > α favours recall (thin vessels,
    small lesions). α = β = 0.5 is soft Dice.
    """
    p, t = _probs_and_onehot(logits, target)
    tp = (p * t).sum((2, 3))
    fp = (p * (1 - t)).sum((2, 3))
    fn = ((1 - p) * t).sum((2, 3))
    return (1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)).mean()


LOSSES: dict[str, Loss] = {
    "bce": bce,
    "dice": soft_dice_loss,
    "bce_dice": bce_dice,
    "focal": focal_loss,
    "tversky": tversky_loss,
}


def make_loss(name: str) -> Loss:
    """The loss called `name` (one of LOSSES)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid choices: {', '.join(map(repr, LOSSES))}")
    return LOSSES[name]

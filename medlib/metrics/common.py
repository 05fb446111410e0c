"""Shared by the metrics: image shapes, and the t-interval of a mean over a few seeds."""

from __future__ import annotations

import numpy as np
import torch


def t_interval(values) -> dict:
    """Mean and 95 % t-interval of a few values (seeds), skipping None and NaN; the interval is the
    mean alone for one value. Chapters 06 and 11 summarise their curves with it (chapter 10 explains it)."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / len(v) ** 0.5) if len(v) > 1 else 0.0
    return {"mean": float(v.mean()), "lo": float(v.mean() - half), "hi": float(v.mean() + half), "n": int(len(v))}


def as_nhw(x) -> torch.Tensor:
    """A 2D image or map, or a batch of them: (H, W), (N, H, W) or (N, 1, H, W) -> (N, H, W)."""
    x = torch.as_tensor(x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"expected 2D images or maps shaped (H, W), (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    return x

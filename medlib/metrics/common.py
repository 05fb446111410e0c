"""Shapes shared by the image and segmentation metrics."""

from __future__ import annotations

import torch


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

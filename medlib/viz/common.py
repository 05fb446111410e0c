"""The one way every figure draws an image: (C, H, W) uint8 or float, grey or RGB."""

from __future__ import annotations

import numpy as np
import torch


def as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def to_display(image) -> np.ndarray:
    """(C, H, W) → (H, W) for one channel or (H, W, 3) for colour; uint8 is scaled to [0, 1]."""
    a = as_numpy(image)
    a = a.astype(np.float32) / 255 if a.dtype == np.uint8 else a.astype(np.float32)
    return a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)


def show_image(ax, image) -> None:
    """Draw one (C, H, W) image without ticks: grey for one channel (uint8 on the full
    0-255 range, floats auto-scaled), RGB for three."""
    raw = as_numpy(image)
    a = to_display(raw)
    scale = {"vmin": 0, "vmax": 1} if raw.dtype == np.uint8 else {}
    ax.imshow(a, cmap="gray", **scale) if a.ndim == 2 else ax.imshow(a.clip(0, 1) if raw.dtype == np.uint8 else a)
    ax.set_xticks([])
    ax.set_yticks([])

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


def image_and_overlay(image, caption: str, title: str):
    """A two-panel explorer figure: the image with its caption, and the image again for a map to
    be drawn over (chapters 07 and 09). Returns (fig, right axes)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(5.6, 2.9))
    show_image(axes[0], image)
    axes[0].set_title(caption, fontsize=8)
    show_image(axes[1], image)
    fig.suptitle(title, fontsize=10)
    return fig, axes[1]

"""Predicting whole images with a fully convolutional model: padding to a multiple of
2^depth, sliding-window inference written by hand (equal to MONAI's), flip test-time
augmentation. Explained in chapter 05.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from medlib.data.segmentation import SegDataset, SegSplit


def predict_padded(model, x: torch.Tensor, multiple: int = 16) -> torch.Tensor:
    """Run a fully convolutional model on whole images: reflect-pad H, W up to a
    `multiple`, predict, crop back. x (B, C, H, W) float → logits (B, K, H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    xp = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
    return model(xp)[..., :h, :w]


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows covering [0, size): stride window·(1 - overlap), the last
    window aligned with the end (the layout MONAI uses)."""
    if size <= window:
        return [0]
    stride = max(int(window * (1 - overlap)), 1)
    n = math.ceil((size - window) / stride) + 1
    return sorted({min(i * stride, size - window) for i in range(n)})


@torch.no_grad()
def sliding_window(model, x: torch.Tensor, window: int, overlap: float = 0.25, batch_size: int = 8):
    """Sliding-window inference by hand: tile the image with overlapping windows, predict
    each, and average the logits where windows overlap. x (B, C, H, W) → (B, K, H, W).

    Images smaller than the window are zero-padded (as MONAI does). Matches
    `monai.inferers.sliding_window_inference(..., mode="constant")`.
    """
    b, _, h, w = x.shape
    ph, pw = max(window - h, 0), max(window - w, 0)
    if ph or pw:  # pad symmetrically like MONAI
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    H, W = x.shape[-2:]
    tiles = [(i, j) for i in window_starts(H, window, overlap) for j in window_starts(W, window, overlap)]
    out, count = None, torch.zeros(1, 1, H, W, device=x.device)
    for k in range(0, len(tiles), max(batch_size // b, 1)):
        chunk = tiles[k : k + max(batch_size // b, 1)]
        crops = torch.cat([x[..., i : i + window, j : j + window] for i, j in chunk])  # (len·B, C, w, w)
        pred = model(crops)
        if out is None:
            out = torch.zeros(b, pred.shape[1], H, W, device=x.device, dtype=pred.dtype)
        for t, (i, j) in enumerate(chunk):
            out[..., i : i + window, j : j + window] += pred[t * b : (t + 1) * b]
            count[..., i : i + window, j : j + window] += 1
    out = out / count
    return out[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]


@torch.no_grad()
def predict_probs(
    model,
    data: SegDataset,
    split: SegSplit,
    device,
    batch_size: int = 8,
    window: int | None = None,
    multiple: int = 16,
    tta: bool = False,
):
    """Foreground probabilities (N, H, W) for a split (binary), or class probabilities
    (N, K, H, W). Whole images are padded (`predict_padded`) unless `window` is given.
    `tta`: also predict the horizontally and vertically flipped images and average."""
    model.eval()
    predict = (lambda x: sliding_window(model, x, window)) if window else (lambda x: predict_padded(model, x, multiple))
    flips = [(), (-1,), (-2,)] if tta else [()]
    outs = []
    for k in range(0, len(split), batch_size):
        x = data.normalize(split.images[k : k + batch_size].to(device))  # (B, C, H, W)
        probs = 0
        for dims in flips:
            logits = predict(x.flip(dims) if dims else x)
            logits = logits.flip(dims) if dims else logits
            probs = probs + (torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else logits.softmax(1))
        outs.append((probs / len(flips)).float().cpu())
    return torch.cat(outs)

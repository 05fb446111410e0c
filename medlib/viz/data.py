"""Figures for looking at data: class montages, class balance, intensities, 3D slice grids.
Explained in chapter 00 (data tour)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from medlib.data.medmnist import MedMNISTData, Split
from medlib.viz.common import show_image


def montage_by_class(split: Split, n_per_class: int = 8, seed: int = 0, title: str | None = None):
    """One row per class (per label for multi-label) of random examples of a 2D split."""
    info = split.info
    rng = np.random.default_rng(seed)
    y = split.labels.numpy()
    k = info.n_classes
    fig, axes = plt.subplots(k, n_per_class, figsize=(n_per_class * 0.9, k * 0.95 + 0.4), squeeze=False)
    for c in range(k):
        members = np.flatnonzero(y[:, c] == 1) if info.multilabel else np.flatnonzero(y[:, 0] == c)
        picks = rng.choice(members, min(n_per_class, len(members)), replace=False) if len(members) else []
        for j in range(n_per_class):
            ax = axes[c, j]
            if j < len(picks):
                show_image(ax, split.images[picks[j]])
            else:
                ax.axis("off")
        name = info.labels[c][:18]
        axes[c, 0].set_ylabel(name if name == str(c) else f"{c}: {name}", rotation=0, ha="right",
                              va="center", fontsize=8)
    fig.suptitle(title or f"{info.title}: {split.name} examples per class", fontsize=10)
    fig.tight_layout()
    return fig


def class_balance(data: MedMNISTData, ax=None):
    """Grouped bars: items per class (or per positive label) in train / val / test."""
    info = data.info
    ax = ax or plt.subplots(figsize=(max(4, info.n_classes * 0.7 + 2), 2.8))[1]
    width = 0.27
    x = np.arange(info.n_classes)
    for i, (name, color) in enumerate(zip(("train", "val", "test"), ("#3b6ea8", "#f0a030", "#5aa469"))):
        counts = data.split(name).class_counts()
        ax.bar(x + (i - 1) * width, counts / counts.sum(), width, label=f"{name} (n={len(data.split(name))})",
               color=color)
    names = [info.labels[c][:18] for c in x]
    ax.set_xticks(x, [f"{c}" if info.n_classes > 6 or names[c] == str(c) else f"{c}: {names[c]}" for c in x],
                  fontsize=7, rotation=0 if info.n_classes <= 4 else 30)
    ax.set_ylabel("share of split" + (" (positives)" if info.multilabel else ""))
    ax.set_title(f"{info.title}: class balance ({info.task})", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return ax.figure


def intensity_histograms(split: Split, ax=None, max_items: int = 2000, seed: int = 0):
    """Pixel-intensity histogram per class (a random sample of at most `max_items` images)."""
    info = split.info
    ax = ax or plt.subplots(figsize=(4.5, 2.8))[1]
    sub = split.subset(max_items, seed) if not info.multilabel else split
    y = sub.labels.numpy()
    for c in range(info.n_classes):
        m = (y[:, c] == 1) if info.multilabel else (y[:, 0] == c)
        if m.any():
            px = sub.images[torch.from_numpy(m)].float().flatten()
            ax.hist(px.numpy(), bins=64, range=(0, 255), density=True, histtype="step",
                    label=info.labels[c][:16])
    ax.set_xlabel("pixel value (uint8)")
    ax.set_ylabel("density")
    ax.set_title(f"{info.title}: intensities by class", fontsize=10)
    ax.legend(fontsize=6, frameon=False, ncol=2 if info.n_classes > 4 else 1)
    return ax.figure


def _extent(v: np.ndarray, axis: int, n: int) -> np.ndarray:
    """`n` slice indices spread over the part of `axis` where the volume is not empty."""
    other = tuple(a for a in range(3) if a != axis)
    filled = np.flatnonzero(v.max(axis=other) > v.min())
    lo, hi = (filled[0], filled[-1]) if len(filled) else (0, v.shape[axis] - 1)
    return np.unique(np.linspace(lo, hi, n).round().astype(int))


def slice_grid(volume: torch.Tensor, n: int = 8, title: str = ""):
    """Three rows — slices along array axis 0, 1 and 2 — of `n` slices of a (1, D, H, W)
    volume, spread over the extent where the volume is not empty (index above each slice).
    The rows are named by axis: MedMNIST 3D does not say which axis is axial, coronal or
    sagittal."""
    v = volume[0].numpy()
    views = {"axis 0": (0, lambda i: v[i]), "axis 1": (1, lambda i: v[:, i]),
             "axis 2": (2, lambda i: v[:, :, i])}
    fig, axes = plt.subplots(3, n, figsize=(n * 0.95, 3.4))
    for r, (name, (axis, take)) in enumerate(views.items()):
        idx = _extent(v, axis, n)
        for j in range(n):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(idx):
                ax.axis("off")
                continue
            ax.imshow(take(idx[j]), cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{idx[j]}", fontsize=7, pad=2)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

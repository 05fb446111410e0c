"""Figures for chapter 03 (autoencoders): image rows, rate-quality curves, score histograms."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from medlib.viz.common import as_numpy


def image_rows(rows: dict, titles=None, title: str = "", cmap: str = "gray", vmin=0.0, vmax=1.0, scale: float = 1.3,
               row_cmaps: dict | None = None):
    """One row per entry of `rows` ({name: images (N, H, W) or (N, 1, H, W)}), N columns."""
    rows = {k: as_numpy(v).reshape(len(v), *np.shape(v)[-2:]) for k, v in rows.items()}
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(scale * n, scale * len(rows) + 0.4), squeeze=False)
    for r, (name, ims) in enumerate(rows.items()):
        cm = (row_cmaps or {}).get(name, cmap)
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(ims):
                lo, hi = (None, None) if cm != cmap else (vmin, vmax)
                ax.imshow(ims[c], cmap=cm, vmin=lo, vmax=hi)
            if r == 0 and titles is not None and c < len(titles):
                ax.set_title(titles[c], fontsize=7)
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def curves(x, ys: dict, xlabel: str, ylabel: str, title: str = "", logx: bool = False, ax=None, bands: dict | None = None):
    """Lines {name: values over x}, optional ± bands {name: std}."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for name, y in ys.items():
        ax.plot(x, y, marker="o", ms=4, label=name, lw=2.2 if "learned" in name or "ours" in name else 1.4)
        if bands and name in bands:
            ax.fill_between(x, np.asarray(y) - bands[name], np.asarray(y) + bands[name], alpha=0.15)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel), ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return ax.figure


def score_histograms(scores: dict, groups, names, title: str = ""):
    """One panel per score ({name: (N,)}), histograms per group (e.g. normal / abnormal)."""
    groups = np.asarray(groups)
    fig, axes = plt.subplots(1, len(scores), figsize=(3.4 * len(scores), 2.8), squeeze=False)
    for ax, (name, s) in zip(axes[0], scores.items()):
        s = as_numpy(s)
        bins = np.linspace(np.quantile(s, 0.005), np.quantile(s, 0.995), 30)
        for g, label in enumerate(names):
            ax.hist(s[groups == g], bins=bins, alpha=0.55, density=True, label=label)
        ax.set_title(name, fontsize=9), ax.set_yticks([])
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def latent_scatter(z2, y, labels, title: str = "", ax=None):
    """2D embedding (N, 2) coloured by class."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(4.2, 3.8))
    z2, y = as_numpy(z2), np.asarray(y).ravel()
    for k, name in enumerate(labels):
        ax.scatter(*z2[y == k].T, s=6, alpha=0.6, label=name)
    ax.set_title(title, fontsize=10), ax.legend(fontsize=7, markerscale=2)
    ax.set_xticks([]), ax.set_yticks([])
    return ax.figure

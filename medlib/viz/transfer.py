"""Figures of chapter 06: SimCLR's views, its loss, features before and after pretraining, the
fine-tuning comparison and the label-efficiency curves."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from medlib.viz.common import show_image


def views(images: torch.Tensor, augment, generator: torch.Generator, n_views: int = 6, title: str = ""):
    """Each row: an image (normalised, (N, C, H, W)) and `n_views` random SimCLR views of it."""
    n = len(images)
    fig, axes = plt.subplots(n, n_views + 1, figsize=(1.3 * (n_views + 1), 1.4 * n), squeeze=False)
    for i in range(n):
        show_image(axes[i, 0], (images[i] + 1) / 2)
        vs = augment(images[i:i + 1].expand(n_views, *images.shape[1:]).clone(), generator)
        for j in range(n_views):
            show_image(axes[i, j + 1], ((vs[j] + 1) / 2).clamp(0, 1))
    axes[0, 0].set_title("image", fontsize=9)
    for j in range(n_views):
        axes[0, j + 1].set_title(f"view {j + 1}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def loss_curve(losses: list[float], chance: float, title: str = "SimCLR pretraining"):
    """NT-Xent per epoch against its value for embeddings that know nothing, log(2N - 1)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(losses) + 1), losses, "o-", label="NT-Xent (training)")
    ax.axhline(chance, color="grey", ls="--", label=f"chance: log(2N-1) = {chance:.2f}")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8), ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def embeddings(points: dict[str, np.ndarray], labels: np.ndarray, names, title: str = ""):
    """One panel per encoder: 2D projections (N, 2) of the same images coloured by class."""
    fig, axes = plt.subplots(1, len(points), figsize=(3.6 * len(points), 3.4), squeeze=False)
    for ax, (name, p) in zip(axes[0], points.items()):
        for c in np.unique(labels):
            sel = labels == c
            ax.scatter(p[sel, 0], p[sel, 1], s=7, alpha=0.6, label=names[int(c)][:18])
        ax.set_title(name, fontsize=9), ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].legend(fontsize=7, markerscale=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def matrix(table, title: str = "", fmt: str = "{:.3f}", cmap: str = "viridis"):
    """A heat map of a DataFrame (rows x columns) with the value in each cell."""
    vals = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.7 * vals.shape[1], 0.9 + 0.55 * vals.shape[0]))
    im = ax.imshow(vals, cmap=cmap, vmin=np.nanmin(vals), vmax=np.nanmax(vals), aspect="auto")
    for (i, j), v in np.ndenumerate(vals):
        if np.isfinite(v):
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8,
                    color="white" if v < (np.nanmin(vals) + np.nanmax(vals)) / 2 else "black")
    ax.set_xticks(range(vals.shape[1]), table.columns, fontsize=8, rotation=15)
    ax.set_yticks(range(vals.shape[0]), table.index, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def curves(table, metric: str = "auc", title: str = "", reference: dict | None = None):
    """Label-efficiency curves: `table` rows (strategy, fraction, mean, lo, hi, n); x on a log
    scale; a band per strategy (the CI over seeds); `reference`: {name: value} horizontal lines."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for strategy, part in table.groupby("strategy", sort=False):
        part = part.sort_values("fraction")
        x = part["fraction"].to_numpy() * 100
        style = {"from scratch": dict(color="black", ls="--"), "validation's choice": dict(color="black", ls=":")}.get(strategy, {})
        ax.plot(x, part["mean"], marker="o", **{"ls": "-", **style}, label=f"{strategy}")
        if (part["n"] > 1).any():
            ax.fill_between(x, part["lo"], part["hi"], alpha=0.12, color=ax.lines[-1].get_color())
    for name, v in (reference or {}).items():
        ax.axhline(v, color="grey", lw=0.8, ls=":")
        ax.text(ax.get_xlim()[0] if math.isfinite(ax.get_xlim()[0]) else 1, v, f" {name}", fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.minorticks_off()
    ticks = sorted(table["fraction"].unique() * 100)
    ax.set_xticks(ticks, [f"{t:g} %" for t in ticks])
    ax.set_xlabel("labelled training images (share of the training split)")
    ax.set_ylabel(f"test {metric.upper()}")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8), ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig

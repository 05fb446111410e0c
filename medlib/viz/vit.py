"""Figures for chapter 07 (Vision Transformers): an image cut into patches, attention maps over
images, positional-embedding similarity, the data-hunger curve, ablation bars, and an
explorer over image, layer and head."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from medlib.viz.common import as_numpy, image_and_overlay, show_image


def patches(image, patch: int, title: str = ""):
    """One (C, S, S) image and the same image cut into its p x p patches, numbered in token order."""
    img = as_numpy(image)
    s = img.shape[-1]
    g = s // patch
    fig = plt.figure(figsize=(7.4, 3.6))
    ax = fig.add_subplot(1, 2, 1)
    show_image(ax, image)
    for k in range(1, g):
        ax.axhline(k * patch - 0.5, color="#e33", lw=0.8), ax.axvline(k * patch - 0.5, color="#e33", lw=0.8)
    ax.set_title(f"{s} px image, {g} x {g} patches of {patch} px", fontsize=9)
    sub = fig.add_gridspec(g, g, left=0.53, right=0.97, top=0.84, bottom=0.05, wspace=0.08, hspace=0.25)
    for i in range(g):
        for j in range(g):
            a = fig.add_subplot(sub[i, j])
            show_image(a, img[:, i * patch:(i + 1) * patch, j * patch:(j + 1) * patch])
            if g <= 7:
                a.set_title(str(1 + i * g + j), fontsize=6, pad=1)
    fig.text(0.75, 0.91, "tokens 1 .. N (token 0 is the class token)", ha="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10, y=1.0)
    return fig


def upsample(maps: torch.Tensor, size: int) -> np.ndarray:
    """(B, g, g) patch maps -> (B, size, size), bilinear, each rescaled to [0, 1] for display."""
    m = F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = m.flatten(1).min(1)[0][:, None, None], m.flatten(1).max(1)[0][:, None, None]
    return as_numpy((m - lo) / (hi - lo).clamp(min=1e-12))


def attention_rows(images, rows: dict, captions=None, title: str = "", alpha: float = 0.5):
    """Images (N, C, S, S) on top, then one row per {name: maps (N, g, g)} overlaid on them."""
    n, s = len(images), images.shape[-1]
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.35 * n, 1.4 * (1 + len(rows)) + 0.4), squeeze=False)
    for c in range(n):
        show_image(axes[0, c], images[c])
        if captions is not None:
            axes[0, c].set_title(captions[c], fontsize=6)
        for r, maps in enumerate(rows.values(), start=1):
            show_image(axes[r, c], images[c])
            axes[r, c].imshow(upsample(maps[c:c + 1], s)[0], cmap="jet", alpha=alpha, vmin=0, vmax=1)
    axes[0, 0].set_ylabel("image", fontsize=8)
    for r, name in enumerate(rows, start=1):
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def position_similarity(pos: torch.Tensor, grid: int, title: str = "Positional embeddings: cosine similarity"):
    """pos (N, D), one learned vector per patch: for each patch, a g x g map of its vector's cosine
    similarity with every other patch's (ViT paper, Fig. 7)."""
    p = F.normalize(pos.float(), dim=-1)
    sim = as_numpy(p @ p.T).reshape(grid, grid, grid, grid)
    fig, axes = plt.subplots(grid, grid, figsize=(0.62 * grid + 1.2, 0.62 * grid + 0.4), squeeze=False)
    for i in range(grid):
        for j in range(grid):
            im = axes[i, j].imshow(sim[i, j], cmap="viridis", vmin=-1, vmax=1)
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.6, label="cosine similarity")
    fig.suptitle(title, fontsize=10)
    return fig


def hunger_curve(fractions, curves: dict, n_train: int, title: str = "Data hunger (test AUC)", ylabel: str = "test AUC"):
    """{model: (values, lo, hi)} over training fractions: lines with a shaded band (e.g. a 95% CI)."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    x = 100 * np.asarray(fractions, dtype=float)
    for name, (y, lo, hi) in curves.items():
        line, = ax.plot(x, y, marker="o", lw=2, label=name)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(x, [f"{v:g}%\n({round(v / 100 * n_train)})" for v in x])
    ax.set_xlabel("share of the training split (images)"), ax.set_ylabel(ylabel), ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def bars(values: dict, errors: dict | None = None, ylabel: str = "", title: str = "", ref: float | None = None):
    """Horizontal bars {name: value} with optional error bars and a dashed reference line."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(5.6, 0.42 * len(names) + 1.0))
    y = np.arange(len(names))[::-1]
    xerr = [errors.get(k, 0) for k in names] if errors else None
    ax.barh(y, [values[k] for k in names], xerr=xerr, color="#7a9cc6", capsize=3)
    ax.set_yticks(y, names, fontsize=8)
    lo = min(values.values())
    ax.set_xlim(max(0.0, lo - 0.1), min(1.0, max(values.values()) + 0.05))
    if ref is not None:
        ax.axvline(ref, color="k", ls="--", lw=1)
    ax.set_xlabel(ylabel), ax.set_title(title, fontsize=10), ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def attention_explorer(images, attentions: list, captions, grid: int, title: str = "attention of the class token"):
    """images (N, C, S, S); attentions: per block (N, heads, T, T). Pick an image, a block and a
    head ("mean" averages them): the class token's attention over the patches. Headless: image 0,
    the last block, the mean over heads. See `medlib.widgets.live_figure`."""
    from medlib.widgets import live_figure

    n_layers, n_heads = len(attentions), attentions[0].shape[1]

    def draw(index: int, layer: int, head: str):
        a = attentions[layer - 1][index]  # (heads, T, T)
        a = a.mean(0) if head == "mean" else a[int(head)]
        m = a[0, 1:].reshape(1, grid, grid)
        fig, ax = image_and_overlay(images[index], captions[index], title)
        ax.imshow(upsample(m, images.shape[-1])[0], cmap="jet", alpha=0.5)
        ax.set_title(f"block {layer}, head {head}", fontsize=8)
        fig.tight_layout()
        return fig

    def controls(w):
        return {"index": w.IntSlider(value=0, min=0, max=len(images) - 1, description="image"),
                "layer": w.IntSlider(value=n_layers, min=1, max=n_layers, description="block"),
                "head": w.Dropdown(options=["mean", *map(str, range(n_heads))], value="mean", description="head")}

    return live_figure(draw, {"index": 0, "layer": n_layers, "head": "mean"}, controls)

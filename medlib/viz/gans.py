"""Figures of chapter 04: the generator's gradient under both losses, the game's diagnostics
over epochs, sample grids (per class, per epoch), nearest training images, and class coverage."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.utils import make_grid


def grid_image(images: torch.Tensor, nrow: int) -> np.ndarray:
    """Images in [-1, 1] (N, C, S, S) tiled `nrow` per row, as an array for imshow (grey: 2D)."""
    g = make_grid((images.float().clamp(-1, 1) + 1) / 2, nrow=nrow, padding=1, pad_value=1.0)
    g = g.permute(1, 2, 0).numpy()
    return g[..., 0] if images.shape[1] == 1 else g


def loss_gradients():
    """d loss / d logit of the generator's two losses against D(G(z)): the minimax loss
    log(1 - D) has almost no gradient where D rejects the fake (D(G(z)) near 0)."""
    d = np.linspace(0.001, 0.999, 400)
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    ax.plot(d, d, lw=2, label=r"minimax: $\log(1-D(G(z)))$ -> $|\partial/\partial\ell| = D$")
    ax.plot(d, 1 - d, lw=2, label=r"non-saturating: $-\log D(G(z))$ -> $|\partial/\partial\ell| = 1-D$")
    ax.axvspan(0, 0.1, color="grey", alpha=0.2, label="early training: D rejects the fakes")
    ax.set_xlabel("D(G(z)) = sigmoid(logit)"), ax.set_ylabel("|gradient| w.r.t. the logit")
    ax.legend(fontsize=7, loc="center right")
    ax.set_title("The generator's learning signal under each loss", fontsize=10)
    fig.tight_layout()
    return fig


def game_diagnostics(histories: dict, title: str = ""):
    """Per model: the two losses, D(x) and D(G(z)) (or the critic's Wasserstein estimate), and
    the validation Fréchet distance, per epoch; the kept epoch marked."""
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.4))
    twin, combined = None, False
    for (name, h), c in zip(histories.items(), ("#4c72b0", "#c44e52", "#55a868", "#8172b2")):
        ep = np.arange(1, len(h.epochs) + 1)
        wgan = bool(h.epochs) and "train_w_dist" in h.epochs[0]
        if wgan:  # critic losses live on another scale: their own axis
            twin = twin or axes[0].twinx()
            ax, tag = twin, " (right)"
        else:
            ax, tag = axes[0], ""
        ax.plot(ep, h.column("train_d_loss"), "-", color=c, label=f"{name}: D loss{tag}")
        ax.plot(ep, h.column("train_g_loss"), "--", color=c, label=f"{name}: G loss{tag}")
        if h.epochs and "train_d_real" in h.epochs[0]:
            axes[1].plot(ep, h.column("train_d_real"), "-", color=c, label=f"{name}: D(x)")
            axes[1].plot(ep, h.column("train_d_fake"), "--", color=c, label=f"{name}: D(G(z))")
        elif h.epochs and "train_w_dist" in h.epochs[0]:
            ax2 = axes[1].twinx()
            ax2.plot(ep, h.column("train_w_dist"), ":", color=c, label=f"{name}: critic's W estimate (right)")
            ax2.set_ylabel("Wasserstein estimate", fontsize=8)
            h1, l1 = axes[1].get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax2.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")  # one legend, on the top axis
            combined = True
        fid = h.column("val_fid")
        if any(v is not None for v in fid):
            axes[2].plot(ep, fid, "o-", color=c, label=name)
            if 1 <= h.best_epoch <= len(fid):  # 1-based
                axes[2].plot([h.best_epoch], [fid[h.best_epoch - 1]], "*", ms=14, color=c)
    axes[0].set_title("losses (per epoch, mean over steps)", fontsize=9)
    if twin is not None:
        twin.legend(fontsize=7, loc="lower right")
        twin.set_ylabel("critic / WGAN generator loss", fontsize=8)
    axes[1].set_title("D(x) and D(G(z)); 0.5 = D cannot tell", fontsize=9)
    axes[1].axhline(0.5, color="grey", lw=0.8)
    axes[2].set_title("validation domain FID (lower is better; * kept)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch")
        if not (combined and ax is axes[1]):
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def epoch_grids(grids: torch.Tensor, class_names: list[str] | None, per_class: int, title: str = "", every: int = 1):
    """Fixed-noise samples after each epoch (rows: epochs; a block of `per_class` per class)."""
    idx = list(range(0, len(grids), every))
    if idx[-1] != len(grids) - 1:
        idx.append(len(grids) - 1)
    fig, axes = plt.subplots(len(idx), 1, figsize=(9, 0.95 * len(idx) + 0.6), squeeze=False)
    for ax, e in zip(axes[:, 0], idx):
        ax.imshow(grid_image(grids[e], nrow=len(grids[e])), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(f"epoch {e + 1}", rotation=0, ha="right", va="center", fontsize=8)
    if class_names:
        n = len(class_names)
        w = axes[0, 0].get_xlim()[1] / n
        for k, name in enumerate(class_names):
            axes[0, 0].text((k + 0.5) * w, -3, name[:22], ha="center", va="bottom", fontsize=8)
    fig.suptitle(title, fontsize=10, y=1.0)
    fig.tight_layout()
    return fig


def samples_by_class(images: dict[str, torch.Tensor], per_row: int = 8, title: str = ""):
    """Blocks of images side by side: {caption: (n, C, S, S)} (e.g. real and generated per class)."""
    fig, axes = plt.subplots(1, len(images), figsize=(3.6 * len(images), 2.4), squeeze=False)
    for ax, (name, x) in zip(axes[0], images.items()):
        ax.imshow(grid_image(x, per_row), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def nearest_neighbours(fake: torch.Tensor, train: torch.Tensor, idx: torch.Tensor, distances: torch.Tensor,
                       heldout_distances: torch.Tensor, n: int = 8, title: str = ""):
    """Top: the `n` samples closest to a training image, under them that image; right: the
    distance distributions of samples and of held-out real images to their nearest training image."""
    order = torch.argsort(distances)[:n]
    fig = plt.figure(figsize=(12, 3))
    gs = fig.add_gridspec(1, 3)
    ax = fig.add_subplot(gs[0, :2])
    pairs = torch.cat([fake[order], train[idx[order]]])
    ax.imshow(grid_image(pairs, n), cmap="gray", vmin=0, vmax=1)
    ax.set_title("top: the samples closest to a training image; bottom: that training image", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(gs[0, 2])
    bins = np.linspace(0, float(max(distances.max(), heldout_distances.max())), 40)
    ax.hist(heldout_distances.numpy(), bins=bins, alpha=0.6, density=True, label="held-out real images")
    ax.hist(distances.numpy(), bins=bins, alpha=0.6, density=True, label="generated samples")
    ax.set_xlabel("pixel distance to the nearest training image", fontsize=8)
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def class_coverage(shares: dict[str, np.ndarray], class_names: list[str], title: str = ""):
    """Bars: the share of images the judge assigns to each class, per image set."""
    fig, ax = plt.subplots(figsize=(1.4 + 1.2 * len(class_names) * len(shares) / 2, 3))
    w = 0.8 / len(shares)
    for i, (name, s) in enumerate(shares.items()):
        ax.bar(np.arange(len(class_names)) + i * w - 0.4 + w / 2, s, width=w, label=name)
    ax.set_xticks(np.arange(len(class_names)), [c[:18] for c in class_names], fontsize=8)
    ax.set_ylabel("share judged as this class"), ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig

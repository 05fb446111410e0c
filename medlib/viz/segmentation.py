"""Segmentation figures: error overlays (TP / FP / FN coloured), per-image metric
distributions, attention-gate maps, and a threshold/opacity explorer that falls back to
a static figure when no one is watching (papermill, nbval). Explained in chapter 05.
"""

from __future__ import annotations

import numpy as np
import torch

from medlib.viz.common import as_numpy, to_display

TP_COLOR = (0.15, 0.85, 0.25)  # green: vessel/nucleus found
FP_COLOR = (1.0, 0.15, 0.6)  # magenta: predicted but not in the truth
FN_COLOR = (0.1, 0.65, 1.0)  # blue: missed


def error_overlay(image, pred, target, fov=None, alpha: float = 0.6) -> np.ndarray:
    """RGB (H, W, 3): the image in grey with TP green, FP magenta, FN blue at opacity alpha."""
    img = to_display(image)
    grey = img if img.ndim == 2 else img.mean(-1)
    rgb = np.repeat(grey[..., None], 3, -1)
    p, t = as_numpy(pred).astype(bool), as_numpy(target).astype(bool)
    if fov is not None:
        f = as_numpy(fov).astype(bool)
        p, t = p & f, t & f
        rgb = np.where(f[..., None], rgb, rgb * 0.35)
    for m, color in ((p & t, TP_COLOR), (p & ~t, FP_COLOR), (~p & t, FN_COLOR)):
        rgb[m] = (1 - alpha) * rgb[m] + alpha * np.array(color)
    return rgb.clip(0, 1)


def legend_handles():
    from matplotlib.patches import Patch

    return [Patch(color=TP_COLOR, label="true positive"), Patch(color=FP_COLOR, label="false positive"),
            Patch(color=FN_COLOR, label="false negative")]


def show_overlays(split, probs, threshold: float = 0.5, idx=None, dice=None, title: str = "", crop=None):
    """Rows of (image, probability map, error overlay) for the chosen images.

    crop=(top, left, size) zooms into a region (useful for thin vessels)."""
    import matplotlib.pyplot as plt

    idx = list(range(min(3, len(split)))) if idx is None else list(idx)
    fig, axes = plt.subplots(len(idx), 3, figsize=(10, 3.3 * len(idx)), squeeze=False)
    for row, i in enumerate(idx):
        fov = None if split.fov is None else split.fov[i]
        pred = probs[i] >= threshold
        panels = [to_display(split.images[i]), as_numpy(probs[i]),
                  error_overlay(split.images[i], pred, split.masks[i], fov)]
        if crop is not None:
            top, left, size = crop
            panels = [p[top : top + size, left : left + size] for p in panels]
        ax = axes[row]
        ax[0].imshow(panels[0], cmap="gray")
        im = ax[1].imshow(panels[1], cmap="magma", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax[1], fraction=0.046, pad=0.02, label="P(foreground)")
        ax[2].imshow(panels[2])
        d = f"  Dice {float(dice[i]):.3f}" if dice is not None else ""
        ax[0].set_title(f"{split.names[i][:14]}: input", fontsize=9)
        ax[1].set_title("predicted probability", fontsize=9)
        ax[2].set_title(f"errors at threshold {threshold:.2f}{d}", fontsize=9)
        for a in ax:
            a.axis("off")
    fig.legend(handles=legend_handles(), loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, -0.02))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def show_distributions(per_image: dict[str, dict[str, torch.Tensor]], names=("dice", "iou", "sens", "hd95"), title: str = ""):
    """Box + strip plots of per-image metrics; per_image maps a label (a model, an
    observer) to its per-image metric dict from `medlib.metrics.segmentation.summarize`."""
    import matplotlib.pyplot as plt

    names = [n for n in names if all(n in d for d in per_image.values())]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), squeeze=False)
    labels = list(per_image)
    rng = np.random.default_rng(0)
    for ax, n in zip(axes[0], names):
        data = [as_numpy(per_image[k][n]).astype(float) for k in labels]
        data = [d[np.isfinite(d)] for d in data]
        ax.boxplot(data, showfliers=False, widths=0.5)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20, fontsize=8)
        for j, d in enumerate(data):
            ax.scatter(j + 1 + rng.uniform(-0.12, 0.12, len(d)), d, s=8, alpha=0.6)
        unit = " (pixels, lower is better)" if n == "hd95" else ""
        ax.set_title(f"{n}{unit}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title or "per-image metrics (one dot per test image)", fontsize=11)
    fig.tight_layout()
    return fig


def show_gate_maps(image, maps, title: str = "attention gate maps"):
    """The input and each attention gate's map α (coarse → fine). Each map has its own
    colour range (printed in its title), since trained gates often vary within a narrow band."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(3.1 * (len(maps) + 1), 3.2))
    axes[0].imshow(to_display(image), cmap="gray")
    axes[0].set_title("input", fontsize=9)
    for k, (ax, m) in enumerate(zip(axes[1:], maps)):
        a = as_numpy(m).squeeze()
        im = ax.imshow(a, cmap="viridis")
        ax.set_title(f"gate {k + 1}: {a.shape[0]}×{a.shape[1]}, α in [{a.min():.2f}, {a.max():.2f}]", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title + " (colour = α, the weight given to each skip pixel)", fontsize=10)
    fig.tight_layout()
    return fig


def threshold_explorer(split, probs, i: int = 0, threshold: float = 0.5, alpha: float = 0.6):
    """Show image `i`'s error overlay; in a live notebook add threshold and opacity sliders
    that redraw it. Headless (papermill, nbval, the CLI) only the static figure is shown.
    Returns the sliders (live) or the figure (static); see `medlib.widgets.live_figure`."""
    import matplotlib.pyplot as plt

    from medlib.metrics.segmentation import dice as dice_fn
    from medlib.widgets import live_figure

    fov = None if split.fov is None else split.fov[i]

    def draw(threshold, alpha):
        pred = probs[i] >= threshold
        d = dice_fn(pred[None], split.masks[i][None], None if fov is None else fov[None]).item()
        fig, ax = plt.subplots(figsize=(5.5, 5.5))
        ax.imshow(error_overlay(split.images[i], pred, split.masks[i], fov, alpha))
        ax.set_title(f"{split.names[i][:20]}  threshold {threshold:.2f}  Dice {d:.3f}", fontsize=10)
        ax.axis("off")
        ax.legend(handles=legend_handles(), loc="lower right", fontsize=8)
        return fig

    def controls(w):
        return {"threshold": w.FloatSlider(value=round(threshold, 2), min=0.05, max=0.95, step=0.01,
                                           description="threshold"),
                "alpha": w.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.1, description="opacity")}

    return live_figure(draw, {"threshold": threshold, "alpha": alpha}, controls)

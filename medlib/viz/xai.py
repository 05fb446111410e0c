"""Figures of chapter 09: attribution maps over images, perturbation curves, randomisation
cascades, and an explorer (image, method, target class, layer)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from medlib.viz.common import as_numpy, image_and_overlay, show_image

SIGNED = ("ig", "occlusion", "kernelshap")  # maps whose sign means something: drawn red (for) / blue (against)


def _draw_map(ax, image, m, signed: bool, alpha: float = 0.6) -> None:
    show_image(ax, image)
    m = as_numpy(m)
    if signed:
        lim = max(np.abs(m).max(), 1e-12)
        ax.imshow(m, cmap="bwr", vmin=-lim, vmax=lim, alpha=alpha)
    else:
        ax.imshow(m, cmap="inferno", vmin=m.min(), vmax=max(m.max(), m.min() + 1e-12), alpha=alpha)
    ax.set_xticks([]), ax.set_yticks([])


def map_grid(images, rows: dict, captions=None, title: str = "", names: dict | None = None, masks=None):
    """images (N, C, H, W) uint8; rows {method: maps (N, H, W)}: one row per method, one column per
    image, the images on top. Signed methods (SIGNED) in red/blue, others in one colour scale per
    map. `masks` (N, H, W) draws a known truth as a contour."""
    n, r = len(images), len(rows) + 1
    fig, axes = plt.subplots(r, n, figsize=(1.55 * n + 1.2, 1.55 * r), squeeze=False)
    for j in range(n):
        show_image(axes[0, j], images[j])
        axes[0, j].set_xticks([]), axes[0, j].set_yticks([])
        if captions is not None:
            axes[0, j].set_title(captions[j], fontsize=7)
        for i, (method, maps) in enumerate(rows.items(), start=1):
            _draw_map(axes[i, j], images[j], maps[j], method in SIGNED)
            if masks is not None and masks[j].any():
                axes[i, j].contour(as_numpy(masks[j]).astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
    for i, method in enumerate(["image", *rows]):
        axes[i, 0].set_ylabel((names or {}).get(method, method), fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def perturbation_curves(curves: dict, names: dict, title: str = ""):
    """curves {"deletion"/"insertion"/...: {method: (B, steps+1) tensor}}: the mean curve per method
    with a band of +-1.96 standard errors over images; one panel per kind."""
    kinds = list(curves)
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for method, c in curves[kind].items():
            c = as_numpy(c)
            x = np.linspace(0, 1, c.shape[1])
            mean, se = c.mean(0), c.std(0) / np.sqrt(len(c))
            ref = method in ("random", "edges")
            line, = ax.plot(x, mean, ls="--" if ref else "-", lw=1.2 if ref else 1.6, label=names.get(method, method))
            ax.fill_between(x, mean - 1.96 * se, mean + 1.96 * se, color=line.get_color(), alpha=0.12)
        ax.set_xlabel("fraction of pixels " + ("removed (most relevant first)" if kind == "deletion" else "inserted"))
        ax.set_ylabel("probability of the class")
        ax.set_title(f"{kind}: " + ("lower area = more faithful" if kind == "deletion" else "higher area = more faithful"),
                     fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def randomization_cascade(stages: list[str], panels: dict, names: dict, title: str = "",
                          threshold: float | None = None):
    """panels {metric name: {method: array (len(stages) + 1, 3) of mean, lo, hi}} from the trained
    model (first point) through each randomised stage, one panel per metric (e.g. Spearman rank
    correlation and SSIM with the trained model's map): a method that passes falls towards 0.
    `threshold` is drawn on the first panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels) + 1.6, 3.9), squeeze=False, sharey=True)
    x = np.arange(len(stages) + 1)
    for n, (ax, (metric, scores)) in enumerate(zip(axes[0], panels.items())):
        for method, sc in scores.items():
            sc = np.asarray(sc)
            ref = method in ("random", "edges")
            line, = ax.plot(x, sc[:, 0], marker="o", ms=3, ls="--" if ref else "-", label=names.get(method, method))
            ax.fill_between(x, sc[:, 1], sc[:, 2], color=line.get_color(), alpha=0.12)
        if threshold is not None and n == 0:
            ax.axhline(threshold, color="grey", lw=0.8, ls=":")
        ax.set_xticks(x, ["trained", *[f"+{s}" for s in stages]], rotation=35, ha="right", fontsize=8)
        ax.set_xlabel("layers re-initialised, output to input (cumulative)", fontsize=9)
        ax.set_title(f"{metric} with the trained model's map", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def explorer(images, captions, compute, methods: dict, classes: list[str], layers: list[str], title: str = ""):
    """An image slider and menus for the method, the target class and the Grad-CAM layer;
    `compute(index, method, target, layer)` returns a map (H, W). Headless: image 0, the first
    method, class 0 (see `medlib.widgets.live_figure`)."""
    from medlib.widgets import live_figure

    first = {"index": 0, "method": next(iter(methods)), "target": 0, "layer": layers[0]}

    def draw(index: int, method: str, target: int, layer: str):
        m = compute(index, method, target, layer)
        fig, ax = image_and_overlay(images[index], captions[index], title)
        _draw_map(ax, images[index], m, method in SIGNED)
        where = f", {layer}" if method in ("gradcam", "gradcampp") else ""
        ax.set_title(f"{methods[method]} for '{classes[target][:18]}'{where}", fontsize=8)
        fig.tight_layout()
        return fig

    def controls(w):
        return {"index": w.IntSlider(value=0, min=0, max=len(images) - 1, description="image"),
                "method": w.Dropdown(options=[(v, k) for k, v in methods.items()], value=first["method"],
                                     description="method"),
                "target": w.Dropdown(options=[(c[:24], i) for i, c in enumerate(classes)], value=0, description="class"),
                "layer": w.Dropdown(options=layers, value=layers[0], description="layer")}

    return live_figure(draw, first, controls)

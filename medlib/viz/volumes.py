"""Figures for volumes read as slice sequences (chapter 02): gradient norms over time, the
attention a slice reader puts on each slice, and an explorer that scrolls a volume's slices
beside that attention (a slider in a live notebook; headless, the static figure)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from medlib.viz.common import as_numpy


def gradient_over_time(norms: dict, title: str = ""):
    """norms: {name: (seeds, T) gradient norms reaching each time step}; plots each curve's
    mean over seeds (band: min-max) relative to its last step, on a log scale."""
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    for name, g in norms.items():
        g = np.asarray(g, dtype=np.float64)
        rel = g / g[:, -1:]
        t = np.arange(1, rel.shape[1] + 1)
        ax.plot(t, np.exp(np.log(rel).mean(0)), lw=1.8, label=name)  # geometric mean over seeds
        ax.fill_between(t, rel.min(0), rel.max(0), alpha=0.2)
    ax.set(yscale="log", xlabel="time step t (slice read at step t)",
           ylabel="‖∂L/∂x_t‖ relative to the last step", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def attention_by_class(attention, y, labels, step: int = 1, title: str = ""):
    """Mean attention per slice position for each true class (band: ± one std over volumes).
    attention (N, T); y (N,) class ids; slice index = position * step."""
    a, y = as_numpy(attention), as_numpy(y).reshape(-1)
    pos = np.arange(a.shape[1]) * step
    fig, ax = plt.subplots(figsize=(6.2, 3.2))
    for k, lab in enumerate(labels):
        sel = a[y == k]
        if len(sel) == 0:
            continue
        m, s = sel.mean(0), sel.std(0)
        ax.plot(pos, m, lw=1.8, label=f"{lab} (n={len(sel)})")
        ax.fill_between(pos, m - s, m + s, alpha=0.2)
    ax.axhline(1 / a.shape[1], color="grey", ls=":", lw=1, label="uniform")
    ax.set(xlabel="slice index along the read axis", ylabel="attention weight", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def slice_with_attention(volume, attention, axis: int, step: int, index: int, title: str = ""):
    """A volume's slice `index` along `axis` beside the attention over the slices read
    (every `step`-th), the current slice marked. volume (1, D, H, W) uint8; attention (T,)."""
    v, a = as_numpy(volume)[0], as_numpy(attention)
    index = int(np.clip(index, 0, v.shape[axis] - 1))
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8.4, 3.0), gridspec_kw={"width_ratios": [1, 2.2]})
    ax0.imshow(np.take(v, index, axis=axis), cmap="gray", vmin=0, vmax=255)
    ax0.set_title(f"axis {axis}, slice {index}", fontsize=9)
    ax0.axis("off")
    pos = np.arange(len(a)) * step
    colors = np.where(pos == (index // step) * step, "tab:red", "tab:blue")
    ax1.bar(pos, a, width=step * 0.8, color=colors)
    ax1.axhline(1 / len(a), color="grey", ls=":", lw=1)
    filled = (v.max(axis=tuple(i for i in range(3) if i != axis)) > v.min()).astype(float)
    ax1.fill_between(np.arange(len(filled)), 0, filled * a.max() * 1.05, step="mid", color="0.85", zorder=0,
                     label="slice not empty")
    ax1.set(xlabel="slice index", ylabel="attention", title=title)
    ax1.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def attention_explorer(volumes: dict, axis: int, step: int, title: str = "attention over slices"):
    """{name: (volume (1, D, H, W), attention (T,))}: a volume selector and a slice slider in a
    live notebook; headless, the first volume at its most attended non-empty slice. See
    `medlib.widgets.live_figure`."""
    from medlib.widgets import live_figure

    names = list(volumes)
    v0, a0 = volumes[names[0]]
    v, a = as_numpy(v0)[0], as_numpy(a0)
    filled = v.max(axis=tuple(i for i in range(3) if i != axis))[::step][:len(a)] > v.min()
    start = int(np.argmax(np.where(filled, a, -1.0))) * step  # the most attended slice that is not empty

    def draw(name: str, index: int):
        v, a = volumes[name]
        return slice_with_attention(v, a, axis, step, index, f"{title}: {name}")

    def controls(w):
        return {"name": w.Dropdown(options=names, value=names[0], description="volume"),
                "index": w.IntSlider(value=start, min=0, max=as_numpy(v0).shape[1 + axis] - 1, description="slice")}

    return live_figure(draw, {"name": names[0], "index": start}, controls)

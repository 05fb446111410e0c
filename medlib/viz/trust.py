"""Figures of chapter 11: reliability diagrams, the NLL against the temperature, uncertainty
histograms, risk–coverage curves, conformal coverage, corruptions and robustness, and the
active-learning curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from medlib.metrics import calibration as cal
from medlib.viz.common import show_image


def reliability_diagram(ax, y, probs, title: str, n_bins: int = 15) -> None:
    """Accuracy against confidence per bin (bars), the diagonal of perfect calibration, the gap
    shaded, and the bin counts as a thin histogram below; ECE in the title."""
    r = cal.reliability(y, probs, n_bins)
    centres = (r["edges"][:-1] + r["edges"][1:]) / 2
    width = 1 / n_bins
    m = r["count"] > 0
    acc, conf = r["accuracy"][m], r["confidence"][m]
    ax.bar(centres[m], acc, width=width, edgecolor="k", lw=0.5, color="#4c72b0", label="accuracy")
    ax.bar(centres[m], np.abs(conf - acc), bottom=np.minimum(conf, acc), width=width, color="#dd8452", alpha=0.35,
           edgecolor="#c44e52", hatch="//", lw=0.5, label="gap to the bin's confidence")
    ax.hlines(conf, centres[m] - width / 2, centres[m] + width / 2, color="#c44e52", lw=1.5)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    share = r["count"] / r["count"].sum()
    ax.bar(centres, share * 0.25, width=width, bottom=0, color="grey", alpha=0.5, label="share of images (x0.25)")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top class)"), ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE {cal.ece(y, probs, n_bins):.3f}", fontsize=9)


def reliability_pair(y, before, after, titles=("before", "after"), suptitle: str = ""):
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    for ax, p, t in zip(axes, (before, after), titles):
        reliability_diagram(ax, y, p, t)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def nll_against_temperature(temps, nlls, fitted: dict[str, float], title: str = ""):
    """The validation NLL as a function of T, with each method's fitted T marked."""
    fig, ax = plt.subplots(figsize=(5, 3.3))
    ax.plot(temps, nlls, "k-", lw=1.5)
    for (name, t), style in zip(fitted.items(), ("o", "x", "+", "s")):
        ax.axvline(t, ls=":", color="grey")
        ax.plot([t], [np.interp(t, temps, nlls)], style, ms=9, mfc="none", label=f"{name}: T = {t:.4f}")
    ax.set_xscale("log"), ax.set_xlabel("temperature T (log scale)"), ax.set_ylabel("validation NLL")
    ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10) if min(temps) <= t <= max(temps)]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks]), ax.minorticks_off()
    ax.set_title(title, fontsize=10), ax.legend(fontsize=8), ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def uncertainty_histograms(values: dict[str, np.ndarray], correct: dict[str, np.ndarray], xlabel: str, title: str = ""):
    """Per method: the uncertainty of right and of wrong predictions (density histograms)."""
    n = len(values)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8), squeeze=False)
    for ax, (name, v) in zip(axes[0], values.items()):
        ok = correct[name].astype(bool)
        bins = np.linspace(0, max(v.max(), 1e-6), 25)
        ax.hist(v[ok], bins=bins, density=True, alpha=0.6, label=f"right ({ok.sum()})")
        ax.hist(v[~ok], bins=bins, density=True, alpha=0.6, label=f"wrong ({(~ok).sum()})")
        ax.set_title(name, fontsize=9), ax.set_xlabel(xlabel, fontsize=8)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("density")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def risk_coverage(curves: dict[str, tuple[np.ndarray, np.ndarray]], aurcs: dict[str, float], title: str = ""):
    """Risk (error rate on the kept images) against coverage, one line per method; AURC in the legend."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for name, (cov, risk) in curves.items():
        ls = "--" if name.startswith(("oracle", "random")) else "-"
        ax.plot(cov, risk, ls, lw=1.4, label=f"{name} (AURC {aurcs[name]:.4f})")
    ax.set_xlabel("coverage (share of images the model answers)"), ax.set_ylabel("risk (error rate of the answers)")
    full = max(risk[-1] for _, risk in curves.values())  # the error rate when answering everything
    ax.set_xlim(0, 1), ax.set_ylim(0, min(1.0, max(2.5 * full, 0.02))), ax.grid(alpha=0.3)
    ax.set_title(title + "\n(the first few images' risk is off the scale: a handful of images)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def coverage_histogram(coverage: np.ndarray, sizes: np.ndarray, alpha: float, title: str = ""):
    """Empirical coverage and mean set size over random calibration / evaluation splits."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].hist(coverage, bins=20, color="#4c72b0", alpha=0.8)
    axes[0].axvline(1 - alpha, color="k", ls="--", label=f"target 1 − α = {1 - alpha:.2f}")
    axes[0].axvline(coverage.mean(), color="#dd8452", label=f"mean {coverage.mean():.3f}")
    axes[0].set_xlabel("coverage of one split"), axes[0].legend(fontsize=8)
    axes[1].hist(sizes, bins=20, color="#55a868", alpha=0.8)
    axes[1].set_xlabel("mean set size of one split")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def corruption_gallery(images: dict[str, list], severities, title: str = ""):
    """Rows: corruption kinds; columns: severity 0 (clean) .. 5. `images[kind][s]` is (C, H, W) uint8."""
    kinds = list(images)
    fig, axes = plt.subplots(len(kinds), len(severities), figsize=(1.35 * len(severities), 1.4 * len(kinds)),
                             squeeze=False)
    for i, k in enumerate(kinds):
        for j, s in enumerate(severities):
            show_image(axes[i, j], images[k][j])
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title("clean" if s == 0 else f"severity {s}", fontsize=8)
        axes[i, 0].set_ylabel(k, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def robustness(table, metrics=("acc", "ece", "entropy"), title: str = ""):
    """`table`: a DataFrame with columns kind, severity, model and the metrics; one panel per metric."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    names = {"acc": "accuracy", "ece": "ECE", "entropy": "mean predictive entropy", "auc": "AUC"}
    kinds, models = list(dict.fromkeys(table["kind"])), list(dict.fromkeys(table["model"]))
    colours = dict(zip(kinds, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, metric in zip(axes[0], metrics):
        for (kind, model), g in table.groupby(["kind", "model"], sort=False):
            g = g.sort_values("severity")
            ax.plot(g["severity"], g[metric], ("o-", "s--", "^:")[models.index(model) % 3], ms=3, lw=1.2,
                    color=colours[kind], label=f"{kind} · {model}")
        ax.set_xlabel("severity (0 = clean)"), ax.set_title(names.get(metric, metric), fontsize=9), ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[k], lw=2, label=k) for k in kinds]
    handles += [Line2D([], [], color="k", ls=("-", "--", ":")[i % 3], marker=("o", "s", "^")[i % 3], ms=3, label=m)
                for i, m in enumerate(models)]
    axes[0, -1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves(curves: dict[str, dict], full: float, target: float, title: str = "", bands: dict | None = None):
    """Validation AUC against labels per query strategy (mean and 95 % band where `bands` gives
    {name: (n, mean, lo, hi)}), the full-data model's AUC and the target (a share of it)."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, c in curves.items():
        if bands and name in bands:
            n, m, lo, hi = bands[name]
            ax.plot(n, m, "o-", ms=3, label=name)
            ax.fill_between(n, lo, hi, alpha=0.15)
        else:
            ax.plot(c["n_labels"], c["val_auc"], "o-", ms=3, label=name)
    ax.axhline(full, color="k", lw=1, label=f"all labels: {full:.3f}")
    ax.axhline(target, color="k", ls="--", lw=1, label=f"target: {target:.3f}")
    sizes = sorted({n for c in curves.values() for n in c.get("n_labels", [])} | {n for b in (bands or {}).values() for n in b[0]})
    ax.set_xscale("log"), ax.set_xlabel("labelled images (log scale)"), ax.set_ylabel("validation AUC")
    ax.set_xticks(sizes, [str(n) for n in sizes]), ax.minorticks_off()
    ax.set_title(title, fontsize=10), ax.grid(alpha=0.3), ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

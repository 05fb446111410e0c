"""Figures of a benchmark report (chapter 10, `medlib report --format html`): bars with error
bars and every seed as a dot, published rows as dashed lines; accuracy against cost."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np


def _label(row, varying: list[str]) -> str:
    s = json.loads(row["settings"])
    size = "" if row["size"] != row["size"] or row["size"] in (None, 28) else f" {int(row['size'])} px"
    lines = [f"{row['dataset']}{size}", row["model"] or ""] + [f"{k}={s.get(k, 'default')}" for k in varying]
    return "\n".join([ln for ln in lines if ln] + [f"{row['profile']} · n={row['n']}"])


def bars(table, title: str, metric: str, varying: list[str], refs: dict, ax=None):
    """One bar per configuration (a `medlib.report.summarise` table): mean over seeds, ± std, each
    run a dot; `refs` {dataset: (name, value)}: a published row per dataset as a dashed line;
    `varying`: the settings that tell rows apart. None when there is nothing to draw."""
    if f"{metric}_mean" not in table or table[f"{metric}_mean"].isna().all():
        return None
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(table) + 1.5), 3.4 + 0.25 * len(varying)))
    x = np.arange(len(table))
    colours = {d: plt.cm.tab10(i % 10) for i, d in enumerate(dict.fromkeys(table["dataset"]))}
    ax.bar(x, table[f"{metric}_mean"], yerr=table[f"{metric}_std"].where(table["n"] > 1), capsize=4,
           color=[colours[d] for d in table["dataset"]], alpha=0.55, edgecolor="k", linewidth=0.6)
    for i, vals in enumerate(table[f"{metric}_values"]):
        ax.scatter(np.full(len(vals), x[i]) + np.linspace(-0.15, 0.15, len(vals)) * (len(vals) > 1), vals,
                   s=14, color="k", zorder=3)
    labelled = set()
    for d in colours:
        if d not in refs:
            continue
        idx = np.flatnonzero(table["dataset"].to_numpy() == d)
        name, value = refs[d]
        ax.hlines(value, idx[0] - 0.45, idx[-1] + 0.45, colors="k", linestyles="--", linewidth=1,
                  label=None if name in labelled else name, zorder=4)
        labelled.add(name)
    ax.set_xticks(x, [_label(r, varying) for _, r in table.iterrows()], fontsize=7.5)
    means = table[f"{metric}_mean"].dropna()
    lo = min(means.min(), *(v for vs in table[f"{metric}_values"] for v in vs))
    hi = max(means.max(), *(v for vs in table[f"{metric}_values"] for v in vs))
    if metric not in ("hd95",) and hi <= 1.0:
        ax.set_ylim(max(0.0, lo - 0.15 * (hi - lo + 0.05)), min(1.0, hi + 0.15 * (hi - lo + 0.05)))
    ax.set_ylabel(metric)
    ax.set_title(f"{title}: {metric} (mean ± std over seeds; dots: runs)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if labelled:
        ax.legend(fontsize=7, loc="best")
    if fig is not None:
        fig.tight_layout()
    return fig


def cost_plot(points, metric: str = "auc", cost: str = "run_seconds"):
    """`medlib.report.cost_points`: test score against cost (log scale), one panel per dataset,
    each configuration with its std over seeds, the Pareto front (column `front`) as a dotted
    line. None when there are no points."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    if points is None or not len(points):
        return None
    datasets = list(dict.fromkeys(points["dataset"]))[:9]
    ncol = min(3, len(datasets))
    nrow = -(-len(datasets) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.5 * nrow), squeeze=False)
    markers = {ch: m for ch, m in zip(dict.fromkeys(points["chapter"]), "osD^v<>p*")}
    colours = {ch: plt.cm.tab10(i) for i, ch in enumerate(markers)}
    c, v = f"{cost}_mean", f"{metric}_mean"
    for ax, d in zip(axes.flat, datasets):
        mine = points[points["dataset"] == d].sort_values(c)
        for _, r in mine.iterrows():
            several = r["n"] > 1
            model = r["model"] if r["model"] and r["model"] != r["chapter"] else ""
            ax.errorbar(r[c], r[v], xerr=r[f"{cost}_std"] if several else None,
                        yerr=r[f"{metric}_std"] if several else None, fmt=markers[r["chapter"]],
                        color=colours[r["chapter"]], capsize=3, markersize=7,
                        label=f"{r['chapter']}{(' ' + model) if model else ''} ({r['profile']}, n={r['n']})")
        front = mine[mine["front"]]
        if len(front) > 1:
            ax.plot(front[c], front[v], "k:", linewidth=1, label="Pareto front")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(mine[c].min() / 1.6, mine[c].max() * 1.6)
        spread = np.where(mine["n"] > 1, mine[f"{metric}_std"].fillna(0), 0)
        lo, hi = (mine[v] - spread).min(), (mine[v] + spread).max()
        pad = max(0.01, 0.15 * (hi - lo))
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel(f"{cost.replace('_', ' ')} (log scale)")
        ax.set_ylabel(f"test {metric}")
        ax.set_title(d, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(datasets):]:
        ax.set_visible(False)
    profiles = ", ".join(sorted(set(points["profile"])))
    fig.suptitle(f"Accuracy against cost ({profiles}): test {metric} vs {cost.replace('_', ' ')}, "
                 "mean ± std over seeds", fontsize=10)
    fig.tight_layout()
    return fig


def pareto_plot(points, metric: str = "auc", cost: str = "train_seconds", title: str = "", highlight: str | None = None):
    """One dataset's `medlib.report.cost_points` on one readable panel: test score against cost
    (log scale), mean ± sd over seeds, every point labelled with its model (bold: on the Pareto
    front, drawn as a step line), one colour per chapter with the legend outside; the rows of
    chapter `highlight` (e.g. this run's models) as black stars. None when there are no points."""
    if points is None or not len(points):
        return None
    c, v = f"{cost}_mean", f"{metric}_mean"
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for i, (ch, g) in enumerate(points.groupby("chapter", sort=True)):
        mine = ch == highlight
        ax.errorbar(g[c], g[v], xerr=g[f"{cost}_std"].fillna(0), yerr=g[f"{metric}_std"].fillna(0),
                    fmt="*" if mine else "o", ms=13 if mine else 6, capsize=2, lw=0.8, color="k" if mine else f"C{i}",
                    label=ch if mine else f"chapter {ch}", zorder=3 if mine else 2)
    front = points[points["front"]].sort_values(c)
    ax.step(front[c], front[v], where="post", color="0.4", lw=1, ls="--", label="Pareto front")
    for _, r in points.iterrows():
        ax.annotate(r["model"] or r["chapter"], (r[c], r[v]), xytext=(6, -11), textcoords="offset points", fontsize=8,
                    weight="bold" if r["front"] else "normal")
    ax.set_xscale("log")
    x_lo, x_hi = ax.get_xlim()  # plain numbers (50, 80) on the log axis, every minor tick labelled within a decade
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(plt.FuncFormatter(lambda x, _: f"{x:g}") if x_hi / x_lo < 10 else plt.NullFormatter())
    ax.set(xlabel=f"{cost.replace('_', ' ')} (log scale; mean ± sd over each record's seeds)", ylabel=f"test {metric}",
           title=title or f"{points['dataset'].iloc[0]}: accuracy against cost (bold: on the Pareto front)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig

"""Figures for classifiers: training curves, ROC, confusion matrix, reliability diagram,
confident-mistakes gallery, first-layer filters and feature maps. Explained in chapter 01.

Every function returns a matplotlib Figure (save it with `run.savefig(fig, name)`).
Shapes: y_true (N,) or (N, 1) class ids, or (N, L) 0/1 for multi-label; y_score (N, K)
probabilities (binary: also (N,) positive scores); images (N, C, H, W) uint8.
Multi-label tasks get one ROC curve and one 2x2 confusion matrix per label, and the
reliability diagram and the mistakes gallery count (image, label) pairs, as the ECE does.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from medlib.metrics.classification import (
    BINARY,
    MULTILABEL,
    binary_auc,
    confusion_matrix,
    expected_calibration_error,
    per_class,
    predict_labels,
)
from medlib.viz.common import show_image


def _is_multilabel(y: np.ndarray, task: str | None = None) -> bool:
    return task == MULTILABEL if task is not None else (y.ndim == 2 and y.shape[1] > 1)


def _scores_2d(s) -> np.ndarray:
    """(N, K) scores; binary (N,) positive scores become (N, 2) = [1 - s, s]."""
    s = np.asarray(s, dtype=np.float64)
    return np.stack([1 - s, s], 1) if s.ndim == 1 else s


def confidence_and_correct(y_true, y_score, task: str):
    """Per prediction, as `expected_calibration_error` counts them: (confidence of the
    prediction, prediction right?, prediction). One per image, or for multi-label one per
    (image, label) pair, flattened (N * L,): confidence max(p, 1 - p), prediction p > 0.5."""
    y, s = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    if task == MULTILABEL:
        p, pred = s.ravel(), predict_labels(s, task).ravel()
        return np.maximum(p, 1 - p), pred == y.ravel(), pred
    y, s = y.reshape(-1), _scores_2d(s)
    pred = predict_labels(s, task)
    if task == BINARY:  # threshold 0.5 on the positive score, as ACC
        conf = np.where(pred == 1, s[:, -1], 1 - s[:, -1])
    else:
        conf = s[np.arange(len(s)), pred]
    return conf, pred == y, pred


def class_rates(y_true, y_score, task: str, n_classes: int) -> dict[str, np.ndarray]:
    """Per-class sensitivity, specificity, precision, F1 and support (`metrics.per_class`).
    Multi-label: per label, from its own 2x2 matrix (positive = the label is present)."""
    y, pred = np.asarray(y_true), predict_labels(y_score, task)
    if task == MULTILABEL:
        rows = [per_class(confusion_matrix(y[:, k], pred[:, k], 2)) for k in range(y.shape[1])]
        return {key: np.array([r[key][1] for r in rows]) for key in rows[0]}
    return per_class(confusion_matrix(y.reshape(-1), pred, n_classes))


def training_curves(histories: dict, keys=("loss", "auc"), title: str | None = None):
    """Train vs validation curves for one or more `History` objects ({label: history}).

    Panel 1: train loss (solid) and validation loss (dashed) per epoch; panel 2: val AUC/ACC.
    """
    if not isinstance(histories, dict):
        histories = {"": histories}
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.4))
    axes = np.atleast_1d(axes)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, h) in enumerate(histories.items()):
        c = colors[i % len(colors)]
        ep = h.column("epoch")
        for ax, key in zip(axes, keys):
            if key == "loss":
                ax.plot(ep, h.column("train_loss"), ".-", color=c, ms=3, label=f"{label} train".strip())
                ax.plot(ep, h.column("val_loss"), ".--", color=c, ms=3, label=f"{label} val".strip())
            else:
                ax.plot(ep, h.column(f"val_{key}"), ".-", color=c, ms=3, label=f"{label} val".strip())
                if h.best_epoch > 0 and key == h.select_by:
                    ax.plot(h.best_epoch, h.epochs[h.best_epoch - 1][f"val_{key}"], "o", color=c)
    for ax, key in zip(axes, keys):
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("cross-entropy" if key == "loss" else f"validation {key.upper()}")
        ax.grid(alpha=0.3)
        if len(histories) == 1:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    if len(histories) > 1:  # one legend below the panels, so that it hides no curve: colour = run, style = split
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=colors[i % len(colors)], label=label) for i, label in enumerate(histories)]
        if "loss" in keys:
            handles += [Line2D([], [], color="0.3", ls="-", label="train"), Line2D([], [], color="0.3", ls="--", label="val")]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    else:
        fig.tight_layout()
    return fig


def roc_points(y: np.ndarray, s: np.ndarray):
    """(FPR, TPR) of every threshold, from the highest score down. y (N,) 0/1, s (N,)."""
    order = np.argsort(-s, kind="mergesort")
    y = np.asarray(y)[order].astype(bool)
    tp, fp = np.cumsum(y), np.cumsum(~y)
    return np.r_[0, fp / max(fp[-1], 1)], np.r_[0, tp / max(tp[-1], 1)]


def roc_curves(y_true, y_score, labels, title: str = "ROC (test)", task: str | None = None):
    """ROC curve per class (one-vs-rest; binary: the positive class only; multi-label: per
    label), AUC in the legend. `task` None: multi-label when y_true is (N, L) with L > 1."""
    y, s = np.asarray(y_true), _scores_2d(y_score)
    if _is_multilabel(y, task):
        columns = [(k, y[:, k].astype(bool)) for k in range(s.shape[1])]
    else:
        y = y.reshape(-1)
        columns = [(k, y == k) for k in ([1] if s.shape[1] == 2 else range(s.shape[1]))]
    fig, ax = plt.subplots(figsize=(4.6, 4.2) if len(columns) <= 6 else (5.6, 5.0))
    for k, pos in columns:
        if pos.all() or not pos.any():
            continue  # AUC undefined
        fpr, tpr = roc_points(pos, s[:, k])
        ax.plot(fpr, tpr, lw=1.2, label=f"{str(labels[k])[:28]} (AUC {binary_auc(pos, s[:, k]):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set(xlabel="1 - specificity (FPR)", ylabel="sensitivity (TPR)", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=7 if len(columns) <= 6 else 6, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _draw_counts(ax, cm: np.ndarray, names, fontsize: int = 8) -> None:
    """One confusion matrix: counts, each row's share in brackets, shaded by the share."""
    share = cm / cm.sum(1, keepdims=True).clip(min=1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    k = len(cm)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]}\n({share[i, j]:.0%})", ha="center", va="center", fontsize=fontsize,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), names, rotation=30 if k > 2 else 0, ha="right" if k > 2 else "center",
                  fontsize=fontsize)
    ax.set_yticks(range(k), names, fontsize=fontsize)


def confusion(y_true, y_score, labels, task: str, title: str = "Confusion matrix (test)"):
    """Counts, with each row's share (= per-class sensitivity on the diagonal) in brackets.
    Multi-label: one 2x2 matrix per label (rows: label absent/present; sensitivity and
    specificity in its title)."""
    y = np.asarray(y_true)
    pred = predict_labels(y_score, task)
    if task == MULTILABEL:
        n = y.shape[1]
        cols = min(5, n)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.4 * rows + 0.4), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        rates = class_rates(y, y_score, task, n)
        for k, ax in zip(range(n), axes.ravel()):
            ax.axis("on")
            _draw_counts(ax, confusion_matrix(y[:, k], pred[:, k], 2), ["no", "yes"], fontsize=7)
            ax.set_title(f"{str(labels[k])[:18]}\nsens {rates['sensitivity'][k]:.2f} "
                         f"spec {rates['specificity'][k]:.2f}", fontsize=7)
        axes[0, 0].set(xlabel="predicted", ylabel="true")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        return fig
    cm = confusion_matrix(y.reshape(-1), pred, len(labels))
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.1 * k + 2.4, 1.0 * k + 1.8))
    _draw_counts(ax, cm, [str(lab)[:14] for lab in labels])
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def reliability_diagram(y_true, y_score, task: str, n_bins: int = 15, title: str = "Reliability (test)"):
    """Accuracy vs confidence of the predicted class in equal-width bins, with ECE (Guo 2017).
    Multi-label: every (image, label) pair is one prediction, as in the ECE."""
    conf, correct, _ = confidence_and_correct(y_true, y_score, task)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)  # as the metric
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(4.4, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centers = (edges[:-1] + edges[1:]) / 2
    counts = np.bincount(idx, minlength=n_bins)
    seen = counts > 0  # empty bins get no bars
    acc = np.array([correct[idx == b].mean() if seen[b] else 0.0 for b in range(n_bins)])
    mean_conf = np.array([conf[idx == b].mean() if seen[b] else 0.0 for b in range(n_bins)])
    ax.bar(centers[seen], acc[seen], width=1 / n_bins, edgecolor="k", alpha=0.8, label="accuracy")
    # the gap spans the bin's accuracy and its mean confidence, whichever is higher (what ECE weighs)
    lo, hi = np.minimum(acc, mean_conf), np.maximum(acc, mean_conf)
    ax.bar(centers[seen], (hi - lo)[seen], bottom=lo[seen], width=1 / n_bins, color="tab:red",
           alpha=0.3, edgecolor="tab:red", label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    ece = expected_calibration_error(y_true, y_score, task, n_bins)
    ax.set(ylabel="accuracy", title=f"{title}: ECE {ece:.3f}", ylim=(0, 1))
    ax.legend(fontsize=7, loc="upper left")
    ax2.bar(centers, counts, width=1 / n_bins, color="grey", edgecolor="k")
    ax2.set(xlabel="confidence of the prediction", ylabel="image-label pairs" if task == MULTILABEL else "images",
            xlim=(0, 1))
    fig.tight_layout()
    return fig


def confident_mistakes(images, y_true, y_score, labels, task: str, n: int = 12,
                       title: str = "Most confident mistakes (test)"):
    """The `n` wrong predictions with the highest confidence, with true/predicted labels.
    Multi-label: wrong (image, label) pairs ranked by |p - 0.5|, so an image may appear twice."""
    imgs = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    y = np.asarray(y_true)
    conf, correct, pred = confidence_and_correct(y, y_score, task)
    wrong = np.flatnonzero(~correct)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    cols = min(6, max(len(wrong), 1))
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    multilabel = task == MULTILABEL
    n_labels = y.shape[1] if multilabel else 1
    y = y.reshape(-1)
    p = np.asarray(y_score, dtype=np.float64).ravel()
    for ax, j in zip(axes.ravel(), wrong):
        i = j // n_labels  # image index (multi-label: j = i * L + label)
        ax.axis("on")
        show_image(ax, imgs[i])
        if multilabel:
            head = f"{str(labels[j % n_labels])[:14]}\ntrue {'yes' if y[j] else 'no'}, p {p[j]:.2f}"
        else:
            head = f"true {str(labels[y[j]])[:11]}\npred {str(labels[pred[j]])[:11]} {conf[j]:.2f}"
        ax.set_title(head, fontsize=7)
    if len(wrong) == 0:
        axes[0, 0].text(0.5, 0.5, "no mistakes", ha="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def filters(weight: torch.Tensor, title: str = "First-layer filters", max_filters: int = 32):
    """Conv weights (C_out, C_in, k, k) as small images (RGB when C_in == 3, else channel 0)."""
    w = weight.detach().float().cpu()[:max_filters]
    cols = min(8, len(w))
    rows = -(-len(w) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.0 * cols, 1.0 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, f in zip(axes.ravel(), w):
        if f.shape[0] == 3:
            f = (f - f.min()) / (f.max() - f.min() + 1e-8)
            ax.imshow(f.permute(1, 2, 0).numpy())
        else:
            m = f[0].abs().max() + 1e-8
            ax.imshow(f[0].numpy(), cmap="RdBu_r", vmin=-m, vmax=m)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def feature_maps(image: torch.Tensor, maps: torch.Tensor, title: str = "Feature maps", max_maps: int = 15):
    """The input image (C, H, W) then channels of `maps` (K, h, w), e.g. one layer's output."""
    m = maps.detach().float().cpu()[:max_maps]
    cols = min(8, len(m) + 1)
    rows = -(-(len(m) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    show_image(axes[0, 0], image)
    axes[0, 0].set_title("input", fontsize=8)
    for i, (ax, f) in enumerate(zip(axes.ravel()[1:], m)):
        ax.imshow(f.numpy(), cmap="viridis")
        ax.set_title(f"ch {i}", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _one_vs_rest(y_true, y_score, task: str, positive: int):
    y, s = np.asarray(y_true), _scores_2d(y_score)
    if task == MULTILABEL:
        return y[:, positive].astype(bool), s[:, positive]
    return y.reshape(-1) == positive, s[:, positive]


def operating_point(y_true, y_score, labels, task: str, threshold: float = 0.5, positive: int | None = None,
                    title: str = "Operating point"):
    """The ROC curve of one class against the rest (binary: the positive class 1) with the point
    that `threshold` on its score picks, and the 2x2 confusion matrix there (sensitivity,
    specificity, counts)."""
    positive = (1 if task == BINARY else 0) if positive is None else positive
    pos, s = _one_vs_rest(y_true, y_score, task, positive)
    pred = s >= threshold
    tp, fn = int((pred & pos).sum()), int((~pred & pos).sum())
    fp, tn = int((pred & ~pos).sum()), int((~pred & ~pos).sum())
    sens, spec = tp / max(tp + fn, 1), tn / max(tn + fp, 1)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8.6, 3.8), gridspec_kw={"width_ratios": [1.2, 1]})
    fpr, tpr = roc_points(pos, s)
    name = str(labels[positive])[:24]
    ax.plot(fpr, tpr, lw=1.4, label=f"{name} vs rest (AUC {binary_auc(pos, s):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.plot(1 - spec, sens, "o", ms=9, color="tab:red", label=f"threshold {threshold:.2f}")
    ax.set(xlabel="1 - specificity (FPR)", ylabel="sensitivity (TPR)", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    _draw_counts(ax2, np.array([[tn, fp], [fn, tp]]), [f"not {name}"[:14], name[:14]])
    ax2.set(xlabel="predicted", ylabel="true")
    fig.suptitle(f"{title}: sensitivity {sens:.3f}, specificity {spec:.3f} at threshold {threshold:.2f}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def operating_point_explorer(y_true, y_score, labels, task: str, threshold: float = 0.5,
                             title: str = "Operating point (validation)"):
    """`operating_point` with a threshold slider (and a class selector beyond two classes) in
    a live notebook; headless (papermill, nbval) only the static figure at `threshold`.
    Returns the controls (live) or the figure (static); see `medlib.widgets.live_figure`."""
    from medlib.widgets import live_figure

    first = 1 if task == BINARY else 0

    def draw(threshold: float, positive: int):
        return operating_point(y_true, y_score, labels, task, threshold, positive, title)

    def controls(w):
        options = [(str(lab)[:24], k) for k, lab in enumerate(labels)]
        return {"threshold": w.FloatSlider(value=round(threshold, 2), min=0.01, max=0.99, step=0.01,
                                           description="threshold"),
                "positive": w.Dropdown(options=options, value=first, description="class", disabled=task == BINARY)}

    return live_figure(draw, {"threshold": threshold, "positive": first}, controls)

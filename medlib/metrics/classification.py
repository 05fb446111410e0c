"""Classification metrics, written by hand and tested against the field's libraries.

Headline ACC and AUC follow MedMNIST's evaluator exactly (medmnist.evaluator.getACC/getAUC;
tests/test_metrics.py checks agreement on all four tasks): AUC is the mean one-vs-rest AUC
over classes (labels for multi-label), ACC uses argmax (multi-class, ordinal) or a 0.5
threshold on the positive score (binary, multi-label). Explained in chapter 01.

Shapes: y_true (N,) or (N, 1) class ids, or (N, L) 0/1 for multi-label;
        y_score (N, K) probabilities (binary: K = 2 or (N,) positive scores).
"""

from __future__ import annotations

import numpy as np

BINARY, MULTICLASS, MULTILABEL, ORDINAL = (
    "binary-class", "multi-class", "multi-label, binary-class", "ordinal-regression")


def _prep(y_true, y_score):
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    return y_true.squeeze(), y_score.squeeze()


def binary_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC = P(score of a positive > score of a negative), ties counted 1/2 (Mann-Whitney U)."""
    y = np.asarray(y).astype(bool).ravel()
    s = np.asarray(s, dtype=np.float64).ravel()
    n_pos, n_neg = y.sum(), (~y).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes present in y_true")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc(y_true, y_score, task: str) -> float:
    """MedMNIST's AUC for any task."""
    y, s = _prep(y_true, y_score)
    if task == MULTILABEL:
        return float(np.mean([binary_auc(y[:, i], s[:, i]) for i in range(s.shape[1])]))
    if task == BINARY:
        return binary_auc(y, s[:, -1] if s.ndim == 2 else s)
    return float(np.mean([binary_auc(y == i, s[:, i]) for i in range(s.shape[1])]))


def predict_labels(y_score, task: str, threshold: float = 0.5) -> np.ndarray:
    """Hard predictions the way MedMNIST's ACC makes them."""
    s = np.asarray(y_score, dtype=np.float64).squeeze()
    if task == MULTILABEL:
        return (s > threshold).astype(int)
    if task == BINARY:
        return ((s[:, -1] if s.ndim == 2 else s) > threshold).astype(int)
    return s.argmax(-1)


def acc(y_true, y_score, task: str, threshold: float = 0.5) -> float:
    """MedMNIST's ACC (multi-label: mean over labels of per-label accuracy)."""
    y, _ = _prep(y_true, y_score)
    pred = predict_labels(y_score, task, threshold)
    if task == MULTILABEL:
        return float(np.mean([(y[:, i] == pred[:, i]).mean() for i in range(y.shape[1])]))
    return float((y == pred).mean())


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()), 1)
    return cm


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class sensitivity (recall), specificity, precision and F1 from a confusion matrix."""
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    fn, fp = cm.sum(1) - tp, cm.sum(0) - tp
    tn = cm.sum() - tp - fn - fp
    div = lambda a, b: np.divide(a, b, out=np.zeros_like(a), where=b > 0)  # noqa: E731
    sens, spec, prec = div(tp, tp + fn), div(tn, tn + fp), div(tp, tp + fp)
    return {"sensitivity": sens, "specificity": spec, "precision": prec,
            "f1": div(2 * prec * sens, prec + sens), "support": cm.sum(1)}


def expected_calibration_error(y_true, y_score, task: str, n_bins: int = 15) -> float:
    """ECE of the top-class confidence (binary/multi-class/ordinal; `calibration.ece`) or of every
    label probability (multi-label): sum over bins of |accuracy - confidence| weighted by bin size."""
    from medlib.metrics import calibration

    y, s = _prep(y_true, y_score)
    if task != MULTILABEL:
        if s.ndim == 1 or s.shape[1] == 1:
            s = np.stack([1 - s.reshape(-1), s.reshape(-1)], 1)
        return calibration.ece(y, s, n_bins)
    p = s.ravel()  # every label is its own binary prediction
    conf, correct = np.maximum(p, 1 - p), ((p > 0.5) == y.ravel()).astype(float)
    idx = calibration.bin_index(conf, n_bins)
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def quadratic_kappa(y_true, y_pred, n_classes: int) -> float:
    """Cohen's kappa with quadratic weights, for ordinal grades (RetinaMNIST)."""
    o = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    i = np.arange(n_classes)
    w = (i[:, None] - i[None, :]) ** 2 / (n_classes - 1) ** 2
    e = np.outer(o.sum(1), o.sum(0)) / o.sum()
    return float(1 - (w * o).sum() / (w * e).sum())


def bootstrap_ci(metric, y_true, y_score, n: int = 1000, seed: int = 0, alpha: float = 0.05):
    """Percentile bootstrap (1 - alpha) CI of `metric(y_true, y_score)` resampling cases.
    Resamples where the metric is undefined (e.g. one class only) are skipped."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(y_true), len(y_true))
        try:
            vals.append(metric(y_true[i], y_score[i]))
        except ValueError:
            continue
    if not vals:
        return float("nan"), float("nan")
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def classification_metrics(y_true, y_score, task: str, n_classes: int) -> dict[str, float]:
    """Every headline number for a split, with short lower-case names."""
    y = np.asarray(y_true).squeeze()
    out = {"auc": auc(y_true, y_score, task), "acc": acc(y_true, y_score, task),
           "ece": expected_calibration_error(y_true, y_score, task)}
    if task == MULTILABEL:
        pred = predict_labels(y_score, task)
        f1s = [per_class(confusion_matrix(y[:, i], pred[:, i], 2))["f1"][1] for i in range(y.shape[1])]
        out["f1"] = float(np.mean(f1s))
        return out
    pred = predict_labels(y_score, task)
    pc = per_class(confusion_matrix(y, pred, n_classes))
    out["bacc"] = float(pc["sensitivity"].mean())
    out["f1"] = float(pc["f1"].mean())
    if task == BINARY:
        out["sens"], out["spec"] = float(pc["sensitivity"][1]), float(pc["specificity"][1])
    if task == ORDINAL:
        out["mae"] = float(np.abs(pred - y).mean())
        out["qwk"] = quadratic_kappa(y, pred, n_classes)
    return out

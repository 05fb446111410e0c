"""Scoring models: on validation while developing, on test once at the end.

- `predict` / `evaluate`: a classifier's scores and metrics on a (validation) split; they
  cannot read a sealed test split.
- `evaluate_classifier` / `evaluate_segmenter`: a chapter's final evaluation in one call.
  They open the run's test split (`run.open_test`), the only functions in medlib that do,
  and return a report: the metrics with bootstrap confidence intervals, a table beside
  the published baselines and a trivial baseline, the cost, and what `run.record` writes.

Explained in chapters 01 (classification) and 05 (segmentation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from medlib import baselines
from medlib.cost import count_macs, count_parameters
from medlib.data.batches import TensorLoader
from medlib.inference import predict_probs
from medlib.metrics import classification as mc
from medlib.metrics import segmentation as ms


# ----------------------------------------------------------------------------- classifiers
def scores_from_logits(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Probabilities as MedMNIST's evaluator expects them: sigmoid (multi-label) or softmax."""
    return torch.sigmoid(logits) if task == mc.MULTILABEL else logits.softmax(-1)


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def predict(model: nn.Module, split, device=None, batch_size: int = 512, tta: bool = False,
            amp: bool = True) -> np.ndarray:
    """Scores (N, K) for a split in eval mode. `tta`: also average over the horizontal flip.
    `amp`: mixed precision on CUDA (no effect on the CPU); False computes in fp32."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    task = split.info.task
    out = []
    for x, _ in TensorLoader(split, batch_size, device=device):
        with _autocast(device, amp):
            p = scores_from_logits(model(x).float(), task)
            if tta:
                p = (p + scores_from_logits(model(x.flip(-1)).float(), task)) / 2
        out.append(p.float().cpu())
    return torch.cat(out).numpy()


def split_loss(scores: np.ndarray, split) -> float:
    """Cross-entropy (BCE for multi-label) of probabilities `scores` against the split's labels."""
    p = torch.from_numpy(scores).clamp(1e-7, 1 - 1e-7)
    if split.info.multilabel:
        return float(F.binary_cross_entropy(p.double(), split.labels.double()))
    return float(F.nll_loss(p.log(), split.targets))


def evaluate(model: nn.Module, split, device=None, batch_size: int = 512, tta: bool = False,
             amp: bool = True) -> dict:
    """Metrics of a (validation) split: auc, acc, ece, f1, ... (metrics.classification) and loss."""
    scores = predict(model, split, device, batch_size, tta, amp)
    m = mc.classification_metrics(split.labels.numpy(), scores, split.info.task, split.info.n_classes)
    m["loss"] = split_loss(scores, split)
    return m


def prior_scores(train, n: int) -> np.ndarray:
    """A trivial classifier: the training split's class frequencies (per-label positive rates
    for multi-label) as the scores of every image, (n, K). Its AUC is 0.5; its ACC is the
    share of the training majority class."""
    counts = np.asarray(train.class_counts(), dtype=np.float64)
    p = counts / len(train) if train.info.multilabel else counts / counts.sum()
    return np.tile(p, (n, 1))


@dataclass
class ClassificationReport:
    """The final evaluation of a classifier (see `evaluate_classifier`)."""

    test: Any  # the opened test split (for figures)
    scores: np.ndarray  # (N, K) test probabilities
    y: np.ndarray  # (N, 1) class ids or (N, L) 0/1
    metrics: dict  # test metrics with CI bounds (<name>_lo, <name>_hi)
    val: dict  # validation metrics of the same model
    table: Any  # pandas DataFrame: published rows, trivial baseline, ours; with cost
    fields: dict = field(default_factory=dict)  # cost and training facts for results.json

    def as_record(self) -> dict:
        """Keyword arguments for `run.record(**report.as_record(), <chapter extras>)`."""
        return {"metrics": {"test": self.metrics, "val": self.val}, **self.fields}


def evaluate_classifier(run, model: nn.Module, data, *, history=None, train_seconds: float | None = None,
                        amp: bool = True, tta: bool = False, label: str | None = None,
                        ci_metrics=("auc", "acc"), others: dict[str, nn.Module] | None = None) -> ClassificationReport:
    """A classifier's final evaluation: open the test split (once, recorded), score it, add
    bootstrap 95% CIs (`run.bootstrap` resamples of the test images), the validation metrics,
    a table beside MedMNIST v2 and the trivial prior classifier, and the cost.

    `others` ({row name: model}, e.g. a chapter's baselines, all trained and chosen on
    validation before this call) are scored on the same opening of the test split: their
    rows join the table and their metrics go to `fields["others"]`."""
    import pandas as pd

    info = data.info
    val = data.val.subset(run.cfg.get("max_eval"), run.seed)
    val_m = evaluate(model, val, run.device, tta=tta, amp=amp)
    test = run.open_test(data).subset(run.cfg.get("max_eval"), run.seed)  # the wall: opened once, here
    scores = predict(model, test, run.device, tta=tta, amp=amp)
    y = test.labels.numpy()
    m = mc.classification_metrics(y, scores, info.task, info.n_classes)
    fns = {"auc": mc.auc, "acc": mc.acc}
    for name in ci_metrics:
        lo, hi = mc.bootstrap_ci(lambda a, b, f=fns[name]: f(a, b, info.task), y, scores,
                                 n=run.cfg.get("bootstrap", 1000), seed=run.seed)
        m[f"{name}_lo"], m[f"{name}_hi"] = lo, hi
    trivial = mc.classification_metrics(y, prior_scores(data.train, len(test)), info.task, info.n_classes)

    size = data.size
    shape = (info.n_channels,) + (size,) * info.dim
    cost = {"model_params": count_parameters(model), "macs": count_macs(model, shape)}
    if history is not None:
        cost.update(train_seconds=history.train_seconds, images_per_s=history.images_per_s,
                    best_epoch=history.best_epoch)
    elif train_seconds is not None:
        cost["train_seconds"] = train_seconds
    rows = {}
    if info.flag in baselines.MEDMNIST_V2:
        rows.update({f"MedMNIST v2: {k}": dict(v) for k, v in baselines.medmnist_baselines(info.flag).items()})
    rows["trivial: training class prior"] = {"auc": trivial["auc"], "acc": trivial["acc"]}
    ours = label or f"ours: {run.params.get('model')} ({run.profile})"
    rows[ours] = {"auc": m["auc"], "acc": m["acc"], "auc 95% CI": f"{m['auc_lo']:.3f}-{m['auc_hi']:.3f}",
                  "acc 95% CI": f"{m['acc_lo']:.3f}-{m['acc_hi']:.3f}",
                  "parameters": cost["model_params"], "train s": cost.get("train_seconds")}
    other_m = {}
    for name, other in (others or {}).items():
        om = mc.classification_metrics(y, predict(other, test, run.device, tta=tta, amp=amp), info.task,
                                       info.n_classes)
        other_m[name] = {**om, "model_params": count_parameters(other), "macs": count_macs(other, shape)}
        rows[name] = {"auc": om["auc"], "acc": om["acc"], "parameters": other_m[name]["model_params"]}
    if others:  # ours last, below the rows it is compared with
        rows[ours] = rows.pop(ours)
    table = pd.DataFrame(rows).T
    fields = {"model_params": cost["model_params"], "macs": cost["macs"],
              **{k: v for k, v in cost.items() if k not in ("model_params", "macs")},
              "trivial_baseline": {"auc": trivial["auc"], "acc": trivial["acc"]}, "n_test": len(test), "tta": tta}
    if others:
        fields["others"] = other_m
    if history is not None:
        fields["history"] = history.epochs
    return ClassificationReport(test, scores, y, m, val_m, table, fields)


# ----------------------------------------------------------------------------- segmenters
@dataclass
class SegmentationReport:
    """The final evaluation of a segmentation model (see `evaluate_segmenter`)."""

    test: Any  # the opened test split (images, masks, fov, observer)
    class_probs: torch.Tensor  # (N, H, W) foreground or (N, K, H, W) class probabilities
    probs: torch.Tensor  # (N, H, W) foreground probability
    per_image: dict  # name -> (N,) per-image values (dice, iou, sens, spec, acc, auc, hd95)
    pooled: dict  # name -> one value over all test pixels
    metrics: dict  # the flat names of results.json (metrics.segmentation.as_record) + CIs
    table: Any  # pandas DataFrame: ours, trivial baseline, 2nd observer, published rows
    baseline: dict | None  # {"name", "per_image", "pooled", "threshold"}
    observer: dict | None  # {"per_image", "pooled"} of the second annotator, where there is one
    val: dict | None = None  # validation metrics of the same model, as the chapter measured them
    fields: dict = field(default_factory=dict)

    def as_record(self) -> dict:
        """Keyword arguments for `run.record(**report.as_record(), <chapter extras>)`."""
        metrics = {"test": self.metrics, **({"val": self.val} if self.val else {})}
        return {"metrics": metrics, **self.fields}


def evaluate_segmenter(run, model: nn.Module, data, *, threshold: float, multiple: int, tta: bool = False,
                       n_test: int | None = None, baseline: tuple[str, Callable, float] | None = None,
                       val_metrics: dict | None = None, history=None) -> SegmentationReport:
    """A segmentation model's final evaluation: open the test split (once, recorded), predict
    whole images (`multiple` = 2^depth padding; `tta` flips), score them at `threshold`
    (chosen on validation), add a bootstrap 95% CI of the mean Dice over test images, the
    trivial baseline `(name, scores_fn(split), threshold)`, the second observer where the
    dataset has one, and the published results for DRIVE."""
    import pandas as pd

    test = run.open_test(data).subset(n_test)  # the wall: opened once, here
    class_probs = predict_probs(model, data, test, run.device, batch_size=4, multiple=multiple, tta=tta)
    probs = class_probs if class_probs.ndim == 3 else 1 - class_probs[:, 0]
    truth = test.masks > 0
    per, pooled = ms.summarize(probs, truth, test.fov, threshold)
    metrics = ms.as_record(per, pooled)
    d = per["dice"].double().numpy()
    lo, hi = mc.bootstrap_ci(lambda a, _b: float(np.mean(a)), d, d, n=run.cfg.get("bootstrap", 1000), seed=run.seed)
    metrics["dice_lo"], metrics["dice_hi"] = lo, hi
    if data.num_classes > 2:
        per_class = ms.dice_per_class(class_probs.argmax(1), test.masks, data.num_classes)  # (N, K - 1)
        metrics["dice_per_class"] = {str(k + 1): float(v) for k, v in enumerate(per_class.mean(0))}
    rows = {f"ours: {run.params.get('model')} ({run.profile})": _seg_row(metrics)}
    base = None
    if baseline is not None:
        name, scores_fn, thr = baseline
        b_per, b_pooled = ms.summarize(scores_fn(test), truth, test.fov, thr)
        base = {"name": name, "per_image": b_per, "pooled": b_pooled, "threshold": thr}
        rows[f"trivial: {name}"] = _seg_row(ms.as_record(b_per, b_pooled))
    observer = None
    if test.observer is not None:
        o_per, o_pooled = ms.summarize(test.observer.float(), test.masks, test.fov, 0.5)
        observer = {"per_image": o_per, "pooled": o_pooled}
        o_row = _seg_row(ms.as_record(o_per, o_pooled))
        o_row["auc_pooled"] = float("nan")  # a binary mask has no ROC curve
        rows["2nd human observer"] = o_row
    if data.name == "drive":
        rows.update({f"published: {k}": dict(v) for k, v in baselines.DRIVE_BASELINES.items()})
    fields = {"model_params": count_parameters(model), "threshold": threshold, "tta": tta, "n_test": len(test),
              "baseline": None if base is None else {"name": base["name"], **ms.as_record(b_per, b_pooled)},
              "observer": None if observer is None else ms.as_record(o_per, o_pooled)}
    if history is not None:
        fields.update(train_seconds=history.train_seconds, images_per_s=history.images_per_s,
                      best_epoch=history.best_epoch, history=history.epochs)
    return SegmentationReport(test, class_probs, probs, per, pooled, metrics, pd.DataFrame(rows).T,
                              base, observer, val_metrics, fields)


def _seg_row(rec: dict) -> dict:
    keys = ("dice", "dice_pooled", "auc_pooled", "sens_pooled", "spec_pooled", "hd95")
    return {k: rec[k] for k in keys if k in rec}

"""`fit()` and `evaluate()`: one small training loop for every chapter.

Classification is the default (loss and validation metrics follow the MedMNIST task);
other objectives pass `loss_fn(logits, y)` and `evaluate_fn(model) -> dict`.
Features: AdamW (default) or MedMNIST's Adam + multistep schedule, cosine schedule with
warm-up, mixed precision on CUDA (bf16, or fp16 where bf16 is unsupported; `amp=False` for
fp32), tqdm.auto progress, best-epoch selection with its
weights restored, checkpoint + resume, a NaN guard and per-epoch history.
Explained in chapter 01.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from medlib.data.loader import TensorLoader
from medlib.data.medmnist import Split
from medlib.metrics.classification import MULTILABEL, classification_metrics

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "multistep", "constant")


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, out of memory...), with what to try."""


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    select_by: str = "auc"

    @property
    def train_seconds(self) -> float:
        return float(sum(e["seconds"] for e in self.epochs))

    @property
    def images_per_s(self) -> float:
        n = sum(e["images"] for e in self.epochs)
        return n / max(self.train_seconds, 1e-9)

    def column(self, key: str) -> list:
        return [e.get(key) for e in self.epochs]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.epochs).set_index("epoch")


def task_loss(task: str, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0):
    """The MedMNIST loss for a task: BCE-with-logits for multi-label, cross-entropy otherwise."""
    if task == MULTILABEL:
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits, y.float(), pos_weight=class_weights)
    return lambda logits, y: F.cross_entropy(logits, y, weight=class_weights, label_smoothing=label_smoothing)


def scores_from_logits(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Probabilities as MedMNIST's evaluator expects them: sigmoid (multi-label) or softmax."""
    return torch.sigmoid(logits) if task == MULTILABEL else logits.softmax(-1)


@torch.no_grad()
def predict(model: nn.Module, split: Split, device=None, batch_size: int = 512, tta: bool = False,
            amp: bool = True) -> np.ndarray:
    """Scores (N, K) for a split. `tta`: also average over the horizontal flip.
    `amp`: mixed precision on CUDA (no effect on CPU); False computes in fp32."""
    device = device or next(model.parameters()).device
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


def evaluate(model: nn.Module, split: Split, device=None, batch_size: int = 512, tta: bool = False,
             amp: bool = True) -> dict:
    """Metrics of a split (auc, acc, ece, f1, ...; see metrics.classification) plus `loss`."""
    scores = predict(model, split, device, batch_size, tta, amp)
    y = split.labels.numpy()
    info = split.info
    m = classification_metrics(y, scores, info.task, info.n_classes)
    p = torch.from_numpy(scores).clamp(1e-7, 1 - 1e-7)
    if info.task == MULTILABEL:
        m["loss"] = float(F.binary_cross_entropy(p.double(), split.labels.double()))
    else:
        m["loss"] = float(F.nll_loss(p.log(), split.targets))
    return m


def _autocast(device: torch.device, enabled: bool = True):
    device = torch.device(device)
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def make_optimizer(model, name: str, lr: float, weight_decay: float):
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid choices: {', '.join(OPTIMIZERS)}")
    params = model.parameters()
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)


def make_schedule(opt, name: str, epochs: int, steps_per_epoch: int, warmup_epochs: float = 0.0,
                  milestones=(0.5, 0.75), gamma: float = 0.1):
    """Per-step LR multiplier: cosine (with linear warm-up), multistep (MedMNIST), or constant."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid choices: {', '.join(SCHEDULES)}")
    total, warm = epochs * steps_per_epoch, int(warmup_epochs * steps_per_epoch)
    steps = [int(m * epochs) * steps_per_epoch for m in milestones]

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if name == "cosine":
            t = (step - warm) / max(1, total - warm)
            return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        if name == "multistep":
            return gamma ** sum(step >= s for s in steps)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _save_atomic(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _move(batch, device):
    x, y = batch
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def fit(
    model: nn.Module,
    train,
    val: Split | None = None,
    *,
    epochs: int,
    task: str | None = None,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    optimizer: str = "adamw",
    schedule: str = "cosine",
    warmup_epochs: float = 0.0,
    milestones=(0.5, 0.75),
    batch_size: int = 128,
    drop_last: bool | None = None,
    augment: Callable | None = None,
    loss_fn: Callable | None = None,
    class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    evaluate_fn: Callable[[nn.Module], dict] | None = None,
    select_by: str = "auc",
    device=None,
    amp: str | bool = "auto",
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    max_grad_norm: float | None = None,
    seed: int = 0,
) -> History:
    """Train `model`, keep the epoch with the best validation `select_by` and restore its weights.

    `train` is a `Split` (batched here with `batch_size`, `augment`, shuffling) or any
    re-iterable of (x, y) batches with a length. `drop_last`: skip the last partial batch of
    each epoch (None: whenever the split holds more than one batch). `amp`: "auto"/True uses
    mixed precision on CUDA (training and the default validation), False trains in fp32.
    `checkpoint`: a file written after each epoch; with `resume=True` training continues
    from it instead of starting again.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    if isinstance(train, Split):
        task = task or train.info.task
        loader = TensorLoader(train, batch_size, shuffle=True, device=device, augment=augment,
                              drop_last=len(train) > batch_size if drop_last is None else drop_last,
                              seed=seed)
    else:
        loader = train
    if loss_fn is None:
        if task is None:
            raise ValueError("fit() needs `task` (or a `loss_fn`) when `train` is not a Split")
        weights = class_weights.to(device) if class_weights is not None else None
        loss_fn = task_loss(task, weights, label_smoothing)
    use_amp = (amp is True or amp == "auto") and device.type == "cuda"
    if evaluate_fn is None:
        if val is None:
            raise ValueError("fit() needs `val` (a Split) or an `evaluate_fn`")
        evaluate_fn = lambda m: evaluate(m, val, device, amp=use_amp)  # noqa: E731

    opt = make_optimizer(model, optimizer, lr, weight_decay)
    sched = make_schedule(opt, schedule, epochs, len(loader), warmup_epochs, milestones)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and not torch.cuda.is_bf16_supported())
    hist, best_state, start = History(select_by=select_by), None, 0

    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["schedule"])
        hist.epochs, hist.best_epoch, hist.best_score = state["epochs"], state["best_epoch"], state["best_score"]
        best_state, start = state["best_model"], state["epoch"] + 1
        torch.set_rng_state(state["rng"])
        if isinstance(loader, TensorLoader) and "loader_rng" in state:  # same batches as unbroken
            loader.generator.set_state(state["loader_rng"])
            loader.aug_generator.set_state(state["aug_rng"])
        if progress:
            print(f"resumed from {ckpt} after epoch {start}")

    step = start * len(loader)
    bar = tqdm(range(start, epochs), desc="epochs", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        t0, total, n_seen = time.perf_counter(), 0.0, 0
        for i, batch in enumerate(loader):
            x, y = _move(batch, device)
            try:
                with _autocast(device) if use_amp else torch.autocast("cpu", enabled=False):
                    loss = loss_fn(model(x), y)
            except torch.cuda.OutOfMemoryError:
                raise TrainingError(
                    f"GPU out of memory at epoch {epoch + 1}, step {i + 1} with batch size {len(x)}: "
                    "try a smaller batch_size (e.g. half) or a smaller model/image size") from None
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {i + 1} (global step {step + 1}); "
                    f"stopped. Try a lower learning rate (now {opt.param_groups[0]['lr']:.2e}), "
                    "gradient clipping (max_grad_norm=1.0) or check the inputs for NaN/inf.")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if max_grad_norm:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            total += loss.item() * len(x)
            n_seen += len(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        metrics = evaluate_fn(model)
        if select_by not in metrics:
            raise ValueError(f"evaluate_fn returned {sorted(metrics)}; it must include {select_by!r}")
        row = {"epoch": epoch + 1, "train_loss": total / max(n_seen, 1), "lr": opt.param_groups[0]["lr"],
               "seconds": seconds, "images": n_seen, "images_per_s": n_seen / max(seconds, 1e-9)}
        row.update({f"val_{k}": float(v) for k, v in metrics.items() if np.isscalar(v)})
        hist.epochs.append(row)
        score = float(metrics[select_by])
        if score > hist.best_score:
            hist.best_score, hist.best_epoch = score, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", **{select_by: f"{score:.3f}"})
        if ckpt:
            _save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                          "schedule": sched.state_dict(), "epoch": epoch, "epochs": hist.epochs,
                          "best_epoch": hist.best_epoch, "best_score": hist.best_score,
                          "best_model": best_state, "rng": torch.get_rng_state(),
                          **({"loader_rng": loader.generator.get_state(),
                              "aug_rng": loader.aug_generator.get_state()}
                             if isinstance(loader, TensorLoader) else {})}, ckpt)
    if best_state is not None:
        model.load_state_dict(best_state)
    return hist


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def clone(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)

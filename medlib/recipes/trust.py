"""Chapter 11's budgets and training recipes: the deep ensemble (five small CompactResNets with
chapter 01's `standard` recipe, together about the single model's training compute), and the
active-learning loop (a fresh model per round, trained on the labelled set with a fixed number
of images seen). Explained in chapter 11."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from medlib import active
from medlib.data.augment import standard_2d
from medlib.data.batches import TensorLoader
from medlib.data.medmnist import Split
from medlib.evaluation import evaluate
from medlib.metrics.common import t_interval
from medlib.recipes.classification import (
    budget_epochs,
    build_classifier,
    recipe,
    standard_epochs,
    task_loss,
)
from medlib.train import fit
from medlib.uncertainty import softmax

MODEL = "compactresnet"  # chapter 01's CPU model; its dropout (p = 0.1, before the head) is what MC dropout uses

# Per profile: the single model's epochs (None: `images` training images seen, at most chapter
# 01's budget); ensemble members (sharing that budget); MC-dropout passes; corruption severities;
# random calibration splits of the conformal check; the active-learning pool cap, images seen per
# round, and default label budget (a share of the pool). `standard` halves chapter 01's binary
# budget (48 000 images) so that the chapter, which trains the model twice over (the single model
# and the ensemble) plus the active-learning rounds, fits 5 minutes on 2 CPU cores.
CHAPTER_BUDGETS = {
    "smoke": {"epochs": 1, "images": None, "members": 2, "passes": 5, "severities": (1, 3), "n_splits": 20,
              "al_pool": 600, "al_images": 600, "al_budget": 0.03},
    "standard": {"epochs": None, "images": 24_000, "members": 5, "passes": 20, "severities": (1, 3, 5),
                 "n_splits": 100, "al_pool": None, "al_images": 2000, "al_budget": 0.05},
    "paper": {"epochs": None, "images": None, "members": 5, "passes": 50, "severities": (1, 2, 3, 4, 5),
              "n_splits": 1000, "al_pool": None, "al_images": 12000, "al_budget": 0.2},
}

# The labelled-set sizes of the active-learning curve, as shares of the pool: 1 % to start (the
# cold start), then growing steps; a run stops at its `budget`.
AL_SCHEDULE = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)


def main_epochs(train: Split, images: int | None) -> int:
    """The single model's epochs: about `images` training images seen, never more than chapter 01's
    budget for the task (`images` None: chapter 01's budget)."""
    full = budget_epochs(train)
    return full if images is None else min(full, standard_epochs(len(train), images))


MEMBER_WIDTH = 12  # ensemble members: CompactResNet at half the width (0.07 M parameters, about half the time per image)


def build_member(info, size: int, *, run, label: str) -> torch.nn.Module:
    """A small ensemble member under the run's seed: chapter 01's CompactResNet at half its width."""
    from medlib.models.cnn import CompactResNet

    model = run.build(CompactResNet, info.n_channels, info.n_classes, width=MEMBER_WIDTH,
                      stem_stride=1 if size <= 32 else 2, label=label)
    return model.to(memory_format=torch.channels_last)


def member_epochs(epochs: int) -> int:
    """Each small member's epochs: half the single model's (at least 2). Five members at half the
    width and half the epochs cost about what the single model costs (each chapter run prints both)."""
    return max(2, round(epochs / 2))


def member_recipe(train: Split, epochs: int) -> dict:
    """`train_classifier` keywords of an ensemble member: chapter 01's `standard` recipe for its
    (shorter) epochs, the warm-up shortened to a fifth of them (a one-epoch member would otherwise
    end at its peak learning rate)."""
    kw = recipe("standard", train, epochs)
    kw["warmup_epochs"] = min(kw["warmup_epochs"], epochs / 5)
    return kw


def al_sizes(n_pool: int, budget: float, start: float = AL_SCHEDULE[0]) -> list[int]:
    """The labelled-set sizes of an active-learning run: the schedule's shares up to `budget`."""
    if not start <= budget <= 1:
        raise ValueError(f"the label budget must be a share of the pool in [{start}, 1], got {budget}")
    sizes = [max(2, round(f * n_pool)) for f in AL_SCHEDULE if start <= f <= budget + 1e-9]
    return sorted(set(sizes))


def subset(split: Split, idx) -> Split:
    """The images of `split` at positions `idx` (the labelled set of an active-learning round)."""
    i = torch.as_tensor(np.asarray(idx), dtype=torch.long)
    return Split(split.images[i], split.labels[i], split.info, split.name)


def train_round(labelled: Split, info, size: int, *, images: int, seed: int, label: str, device) -> torch.nn.Module:
    """A fresh CompactResNet trained on the labelled set for about `images` / 32 steps (batches of
    32, or of the whole set while it is smaller):
    AdamW, one warm-up epoch and cosine decay, chapter 01's augmentation and label smoothing;
    the last epoch is kept (no validation labels are spent on choosing epochs)."""
    model = build_classifier(MODEL, info, size, seed=seed, label=label).to(device)
    n = len(labelled)
    bs = min(32, n)
    steps_per_epoch = max(1, n // bs)
    epochs = max(2, math.ceil(images / 32 / steps_per_epoch))  # about images / 32 steps, whatever the set's size
    batches = TensorLoader(labelled, bs, shuffle=True, device=device, augment=standard_2d(), drop_last=n > bs,
                           seed=seed)
    fit(model, batches, epochs=epochs, loss_fn=task_loss(info.task, None, 0.1), device=device, progress=False,
        optimizer="adamw", lr=2e-3, weight_decay=5e-4, schedule="cosine", warmup_epochs=1)
    return model.eval()


@torch.no_grad()
def embed(model: torch.nn.Module, split: Split, device, batch_size: int = 512) -> torch.Tensor:
    """The pooled features a CompactResNet's dropout and head read, (N, D)."""
    model.eval()
    out = [model.pool(model.features(x)).flatten(1).cpu() for x, _ in TensorLoader(split, batch_size, device=device)]
    return torch.cat(out)


@torch.no_grad()
def head_mc_dropout(model: torch.nn.Module, feats: torch.Tensor, passes: int, seed: int) -> np.ndarray:
    """MC dropout for a model whose only dropout sits before its last layer: everything before it is
    deterministic, so the features are computed once and only dropout + head are repeated —
    the same distribution as `uncertainty.mc_dropout`, `passes` times cheaper. (S, N, K)."""
    g = torch.Generator().manual_seed(seed)
    p = model.dropout.p
    head = model.head.cpu()
    out = []
    for _ in range(passes):
        mask = (torch.rand(feats.shape, generator=g) >= p).float() / (1 - p)
        out.append(head(feats * mask).softmax(-1))
    model.head.to(next(model.features.parameters()).device)
    return torch.stack(out).double().numpy()


def pool_outputs(model, pool: Split, *, passes: int, seed: int, device) -> dict:
    """What every query strategy reads about the pool: probabilities, MC-dropout samples, features."""
    feats = embed(model, pool, device)
    with torch.no_grad():
        probs = softmax(model.head.cpu()(feats).numpy())
    model.head.to(device)
    return {"probs": probs, "samples": head_mc_dropout(model, feats, passes, seed), "features": feats.numpy()}


def active_learning_curve(query: str, train: Split, val: Split, *, size: int, budget: float, images: int,
                          passes: int, seed: int, device, sizes: list[int] | None = None) -> dict:
    """Pool-based active learning from a random 1 % of `train` (labels hidden until asked):
    each round trains a fresh model on the labelled set, scores validation, and asks `query` for
    the next labels up to the next size of the schedule. Returns the curve (labels, validation
    AUC and ACC, share of each class in the labelled set) and the seconds spent. `sizes` replaces
    the schedule (e.g. a colder start: [10, 20, 30, 50])."""
    info = train.info
    sizes = sizes or al_sizes(len(train), budget)
    labelled = active.initial_labels(len(train), sizes[0], seed)
    curve = {"n_labels": [], "val_auc": [], "val_acc": [], "share_per_class": []}
    t0 = time.perf_counter()
    for r in range(len(sizes)):
        model = train_round(subset(train, labelled), info, size, images=images, seed=seed, label=f"al-{r}",
                            device=device)
        m = evaluate(model, val, device)
        counts = np.bincount(train.labels[labelled, 0].numpy(), minlength=info.n_classes)
        curve["n_labels"].append(len(labelled))
        curve["val_auc"].append(m["auc"])
        curve["val_acc"].append(m["acc"])
        curve["share_per_class"].append((counts / counts.sum()).tolist())
        if r + 1 == len(sizes):
            break
        pool = np.setdiff1d(np.arange(len(train)), labelled)
        out = pool_outputs(model, subset(train, pool), passes=passes, seed=seed + r, device=device)
        feats_lab = embed(model, subset(train, labelled), device).numpy() if query == "coreset" else None
        pick = active.select(query, sizes[r + 1] - len(labelled), len(pool), probs=out["probs"],
                             samples=out["samples"], features=out["features"], labelled_features=feats_lab,
                             seed=seed + 1000 + r)
        labelled = np.sort(np.concatenate([labelled, pool[pick]]))
    curve["seconds"] = time.perf_counter() - t0
    return curve


def al_summary(records: list[dict], share: float = 0.95) -> dict:
    """Chapter 11's active-learning curves over seeds, from results.json records of the same
    settings: per strategy, validation AUC per labelled-set size (mean and 95 % t-interval), and
    the labels each seed needed to reach `share` of its own full-data validation AUC (NaN: never
    within the budget), with the saving against random (1 − labels / random's labels, per seed)."""
    curves: dict[str, dict] = {}
    for r in records:
        al = r["active_learning"]
        for q, c in al["curves"].items():
            entry = curves.setdefault(q, {"n_labels": c["n_labels"], "auc": [], "reach": [], "seeds": []})
            if entry["n_labels"] != c["n_labels"]:
                raise ValueError(f"runs with different labelled-set sizes cannot be averaged: {c['n_labels']}")
            entry["auc"].append(c["val_auc"])
            entry["reach"].append(active.labels_to_reach(c["n_labels"], c["val_auc"], share * al["full_auc"]))
            entry["seeds"].append(r["seed"])
    out = {}
    for q, e in curves.items():
        auc = np.asarray(e["auc"])
        out[q] = {"n_labels": e["n_labels"], "seeds": e["seeds"],
                  "auc": [t_interval(auc[:, j]) for j in range(auc.shape[1])],
                  "labels_to_reach": e["reach"], "labels_to_reach_mean": t_interval(e["reach"])["mean"],
                  "mean_auc": t_interval(auc.mean(1))}
    if "random" in out:
        base = dict(zip(curves["random"]["seeds"], curves["random"]["reach"]))
        for q, e in curves.items():
            saving = [1 - n / base[s] if s in base and np.isfinite(base[s]) and np.isfinite(n) else None
                      for s, n in zip(e["seeds"], e["reach"])]
            out[q]["saving_vs_random"] = saving
    return out

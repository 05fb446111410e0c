"""Choose chapter 02's `standard` recipe on VALIDATION only: the number of training volumes
seen, the 3D augmentation and the class-weighted loss, for the SliceRNN (CNN + BiGRU +
attention) on every 3D MedMNIST dataset given. The rule is fixed before the runs (RULE).

    python bench/volume_selection.py --threads 2 [--datasets adrenalmnist3d vesselmnist3d] [--seeds 0 1]

Results: bench/results/volume_selection.json. The test splits are never opened.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from medlib.data.medmnist import load  # noqa: E402
from medlib.evaluation import evaluate  # noqa: E402
from medlib.recipes.classification import balanced_class_weights, standard_epochs, train_classifier  # noqa: E402
from medlib.recipes.volumes import AUGMENTATIONS, build_volume_classifier, recipe  # noqa: E402

RULE = """Chapter 02's SliceRNN (2D CNN per slice, bidirectional GRU, attention pooling) at 28³,
2 CPU cores. Candidates: 6 000 or 12 000 training volumes seen (about 5 or 10 epochs), the
full 3D augmentation (flips on every axis, small rotations/shifts/scales, brightness/contrast)
or a light one (flips and brightness/contrast: no 3D resampling, which costs about 1.5 s per
epoch), and balanced class weights in the loss. Rule, fixed before the runs: for each
candidate, the mean over the datasets of the mean validation score (AUC + ACC) / 2 of the
best-validation-AUC epoch over 2 seeds (chapter 01's rule); the highest wins, and candidates
within 0.005 of it go to the cheapest (training seconds). The test splits are never opened.

Added after stage 1 (whose best validation AUCs on AdrenalMNIST3D were about 0.80-0.83; a 3D CNN
probe at the same budget reached 0.876), each at stage 1's winning budget and augmentation and
judged by the same rule against it:
- "stride1": the slice encoder's first block at stride 1 (the slices keep 28 px in the first
  layer). Stopped after its first run: 243 s of training for one seed on AdrenalMNIST3D (3x stage
  1's winner, beyond the chapter's 5-minute budget on its own) and validation AUC 0.763.
- "slab3": each step of the slice reader sees its slice and the two neighbours as 3 channels
  (local 3D context for the 2D encoder; same cost after the first layer)."""
CANDIDATES = {
    "v6k-full": dict(volumes=6000, aug="full", class_weights=False),
    "v12k-full": dict(volumes=12000, aug="full", class_weights=False),
    "v6k-light": dict(volumes=6000, aug="light", class_weights=False),
    "v12k-light": dict(volumes=12000, aug="light", class_weights=False),
    "v12k-full-cw": dict(volumes=12000, aug="full", class_weights=True),
}
ADDED = {"stride1": {"strides": (1, 2, 2)}, "slab3": {"slab": 3}}  # model keyword arguments, at stage 1's winner
STOPPED = {"v12k-light-stride1"}  # stopped before 2 seeds (see RULE): not required for a decision
TIE = 0.005


def one_run(flag: str, name: str, seed: int, data) -> dict:
    c = CANDIDATES[name]
    kw = recipe("standard", data.train)
    kw.update(epochs=standard_epochs(len(data.train), c["volumes"], lo=3, hi=40), augment=AUGMENTATIONS[c["aug"]](),
              class_weights=balanced_class_weights(data.train) if c["class_weights"] else None)
    model = build_volume_classifier("slicernn", data.info, 28, seed=seed, **c.get("model_kw", {}))
    t0 = time.perf_counter()
    hist = train_classifier(model, data.train, data.val, seed=seed, progress=False, device="cpu", **kw)
    train_s = time.perf_counter() - t0
    val = evaluate(model, data.val, "cpu")
    return {"dataset": flag, "candidate": name, "seed": seed, **c, "epochs": kw["epochs"], "train_seconds": train_s,
            "best_epoch": hist.best_epoch, "val": {k: val[k] for k in ("auc", "acc", "bacc", "sens", "spec", "loss")},
            "score": (val["auc"] + val["acc"]) / 2}


def decide(runs: list[dict], datasets: list[str]) -> dict:
    table = {}
    for name in CANDIDATES:
        per = common.per_dataset(runs, name, datasets, ("auc", "acc", "bacc"))
        if len(per) == len(datasets):
            table[name] = {"score": float(np.mean([p["score"] for p in per.values()])),
                           "train_seconds": float(np.mean([p["train_seconds"] for p in per.values()])), "per_dataset": per}
    if not table:
        return {"status": "incomplete"}
    top = max(v["score"] for v in table.values())
    near = [k for k, v in table.items() if v["score"] >= top - TIE]
    chosen = min(near, key=lambda k: table[k]["train_seconds"])
    required = [k for k in CANDIDATES if k not in STOPPED]
    return {"status": "decided" if all(k in table for k in required) else "partial", "chosen": chosen,
            "recipe": CANDIDATES[chosen], "table": table}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["adrenalmnist3d", "vesselmnist3d"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--only", nargs="+", default=None)
    ap.add_argument("--add", nargs="+", default=[], choices=list(ADDED),
                    help="add these model variants of stage 1's winner as candidates")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = common.RESULTS / "volume_selection.json"
    out = json.loads(path.read_text()) if path.exists() else {"bench": "volume_selection", "rule": RULE,
                                                              "machine": common.machine(), "runs": []}
    out.setdefault("added", {})
    out.setdefault("stage1_winner", out["decision"]["chosen"])
    for tag in args.add:
        win = out["stage1_winner"]
        out["added"].setdefault(f"{win}-{tag}", {**CANDIDATES[win], "model_kw": ADDED[tag]})
    out["rule"] = RULE
    CANDIDATES.update(out["added"])
    for flag in args.datasets:
        data = load(flag, 28)
        for name in args.only or list(CANDIDATES):
            for seed in args.seeds:
                if name not in STOPPED and not common.already_run(out, flag, name, seed):
                    common.add_run(out, "volume_selection", one_run(flag, name, seed, data),
                                   lambda runs: decide(runs, args.datasets))
    common.conclude(out, "volume_selection", lambda runs: decide(runs, args.datasets))


if __name__ == "__main__":
    main()

"""Re-decide the `standard` classification recipe's knobs on VALIDATION data only.

The knobs that earlier versions of the recipe settled on test numbers (bench/README.md,
"What was tried"): class-balanced loss weights, label smoothing, the epoch budget and flip
test-time augmentation. Every combination of the first three is trained for 3 seeds on each
dataset; the test split is never loaded.

Selection rule, fixed before the runs: a configuration's score is the mean over seeds of
(AUC + ACC) / 2 on the validation split, read at the LAST epoch (the cosine schedule ends at
a learning rate of 0, and reading the last epoch does not favour longer budgets the way the
best of N validated epochs would). Decisions are made per task group, one recipe per group:
binary tasks (PneumoniaMNIST, BreastMNIST, score averaged over both) and the other tasks
(RetinaMNIST). Flip TTA is then decided on the same validation score of each run's kept
model (best validation-AUC epoch), with and without TTA. Results:
bench/results/recipe_selection.json (rewritten after every run; finished runs are skipped).

    python bench/recipe_selection.py --threads 1 --shard 0/2 &   # two workers, one per core
    python bench/recipe_selection.py --threads 1 --shard 1/2
    python bench/recipe_selection.py --decide                    # merge the shard files, decide
(The shard files are deleted after merging: recipe_selection.json holds every run.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DATASETS = ("pneumoniamnist", "breastmnist", "retinamnist")
GROUPS = {"binary": ("pneumoniamnist", "breastmnist"), "other": ("retinamnist",)}
WEIGHTS = ("none", "balanced")
SMOOTHING = (0.0, 0.1)
BUDGETS = (24_000, 48_000)  # training images seen in total (epochs = budget / n_train, clipped)


def configs():
    return [{"class_weights": w, "label_smoothing": s, "budget": b}
            for w, s, b in itertools.product(WEIGHTS, SMOOTHING, BUDGETS)]


def key(flag: str, seed: int, cfg: dict) -> str:
    return f"{flag}|{seed}|{cfg['class_weights']}|{cfg['label_smoothing']}|{cfg['budget']}"


def one_run(flag: str, seed: int, cfg: dict) -> dict:
    from medlib.data.medmnist import load
    from medlib.evaluation import evaluate
    from medlib.recipes.classification import (
        balanced_class_weights,
        build_classifier,
        recipe,
        standard_epochs,
        train_classifier,
    )

    data = load(flag, 28)
    kw = recipe("standard", data.train)
    kw["epochs"] = standard_epochs(len(data.train), images=cfg["budget"], hi=cfg["budget"] // 600)
    kw["class_weights"] = balanced_class_weights(data.train) if cfg["class_weights"] == "balanced" else None
    kw["label_smoothing"] = cfg["label_smoothing"]
    model = build_classifier("compactresnet", data.info, 28, seed=seed)
    t0 = time.perf_counter()
    hist = train_classifier(model, data.train, data.val, seed=seed, progress=False, **kw)
    wall = time.perf_counter() - t0
    keep = ("auc", "acc", "ece", "bacc", "mae", "qwk", "loss")
    last = {k[4:]: v for k, v in hist.epochs[-1].items() if k.startswith("val_") and k[4:] in keep}
    best = {k[4:]: v for k, v in hist.epochs[hist.best_epoch - 1].items() if k.startswith("val_") and k[4:] in keep}
    tta = {k: v for k, v in evaluate(model, data.val, tta=True).items() if k in keep}
    return {"dataset": flag, "seed": seed, **cfg, "epochs": kw["epochs"], "best_epoch": hist.best_epoch,
            "fit_wall_seconds": wall, "val_last": last, "val_best": best, "val_best_tta": tta}


def score(m: dict) -> float:
    return (m["auc"] + m["acc"]) / 2


def decide(runs: list[dict]) -> dict:
    """Apply the selection rule of the module docstring to the finished runs."""
    out = {}
    for group, flags in GROUPS.items():
        table = {}
        for cfg in configs():
            per_flag = []
            for flag in flags:
                rs = [r for r in runs if r["dataset"] == flag and all(r[k] == v for k, v in cfg.items())]
                if len(rs) < 3:
                    break
                per_flag.append([score(r["val_last"]) for r in rs])
            else:
                table[key("*", "*", cfg)] = {"cfg": cfg, "mean": float(np.mean([np.mean(v) for v in per_flag])),
                                             "per_dataset": {f: [float(np.mean(v)), float(np.std(v))]
                                                             for f, v in zip(flags, per_flag)}}
        if len(table) < len(configs()):
            out[group] = {"status": f"incomplete: {len(table)} of {len(configs())} configurations have 3 seeds"}
            continue
        best = max(table.values(), key=lambda t: t["mean"])
        chosen = [r for r in runs if r["dataset"] in flags and all(r[k] == v for k, v in best["cfg"].items())]
        gain = [score(r["val_best_tta"]) - score(r["val_best"]) for r in chosen]
        out[group] = {"status": "decided", "chosen": best["cfg"], "score": best["mean"], "table": table,
                      "tta_gain_mean": float(np.mean(gain)), "tta_gain_std": float(np.std(gain)),
                      "tta": bool(np.mean(gain) > 0)}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shard", default="0/1", help="i/n: run every n-th task starting at i")
    ap.add_argument("--decide", action="store_true", help="merge the shard files and apply the rule")
    ap.add_argument("--reverse", action="store_true", help="take the shard's tasks last to first")
    ap.add_argument("--out", help="results file name (default recipe_selection_shard<i>)")
    ap.add_argument("--also-done", nargs="*", default=[],
                    help="other result files whose finished runs are skipped (re-read before each run)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.decide:
        runs, seen = [], set()
        for p in sorted(common.RESULTS.glob("recipe_selection_shard*.json")):
            for r in json.loads(p.read_text())["runs"]:  # a task run twice (two workers) counts once
                if key(r["dataset"], r["seed"], r) not in seen:
                    seen.add(key(r["dataset"], r["seed"], r))
                    runs.append(r)
        shards = [json.loads(p.read_text()) for p in sorted(common.RESULTS.glob("recipe_selection_shard*.json"))]
        out = {"bench": "recipe_selection", "rule": __doc__.split("\n\n")[1], "machines": [s["machine"] for s in shards],
               "runs": sorted(runs, key=lambda r: (r["dataset"], r["class_weights"], r["label_smoothing"],
                                                   r["budget"], r["seed"])),
               "decision": decide(runs)}
        print(json.dumps(out["decision"], indent=1))
        print("wrote", common.write("recipe_selection", out))
        return
    i, n = map(int, args.shard.split("/"))
    name = args.out or f"recipe_selection_shard{i}"
    path = common.RESULTS / f"{name}.json"
    out = json.loads(path.read_text()) if path.exists() else {"machine": common.machine(), "runs": []}
    tasks = [(f, s, c) for f in args.datasets for c in configs() for s in args.seeds][i::n]
    for f, s, c in reversed(tasks) if args.reverse else tasks:
        done = {key(r["dataset"], r["seed"], r) for r in out["runs"]}
        for other in args.also_done:
            p = common.RESULTS / f"{other}.json"
            if p.exists():
                done |= {key(r["dataset"], r["seed"], r) for r in json.loads(p.read_text())["runs"]}
        if key(f, s, c) in done:
            continue
        r = one_run(f, s, c)
        out["runs"].append(r)
        print(name, key(f, s, c), f"{r['fit_wall_seconds']:.0f}s last {json.dumps(r['val_last'])}", flush=True)
        common.write(name, out)
    common.finish(out["machine"])
    common.write(name, out)


if __name__ == "__main__":
    main()

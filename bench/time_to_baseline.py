"""Time-to-baseline: the `standard` recipe vs MedMNIST v2's ResNet-18 (28), on this CPU.

For each dataset: (1) the official protocol's cost per epoch, measured here in the same run
(medmnist.<Dataset>(download=False) + ToTensor + Normalize(0.5, 0.5) + torch DataLoader,
batch 128, ResNet-18 (28), Adam), timed over `--official-batches` training batches after
2 warm-up batches and extrapolated to one epoch and to the protocol's 100 epochs, plus the
protocol's per-epoch evaluation of train/val/test; measured before and after the dataset's
runs, the faster kept; (2) the standard recipe trained for each
seed, with its training wall-time and test metrics. Results: bench/results/time_to_baseline.json
(rewritten after every run; finished runs are kept and skipped with --resume).

    flock /tmp/medlib-cpu.lock python bench/time_to_baseline.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from medlib import paths  # noqa: E402
from medlib.baselines import best_baseline, medmnist_baseline  # noqa: E402
from medlib.cost import count_macs, count_parameters  # noqa: E402
from medlib.data.medmnist import load  # noqa: E402
from medlib.evaluation import evaluate  # noqa: E402
from medlib.models.cnn import build_model  # noqa: E402
from medlib.recipes.classification import (  # noqa: E402
    build_classifier,
    evaluation_tta,
    recipe,
    train_classifier,
)

DATASETS = ("pneumoniamnist", "breastmnist", "retinamnist")


def official_epoch_seconds(flag: str, n_batches: int, batch_size: int = 128) -> dict:
    """Seconds per epoch of the official MedMNIST v2 pipeline + ResNet-18 (28) training."""
    import medmnist
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    info = medmnist.INFO[flag]
    cls = getattr(medmnist, info["python_class"])
    tf = T.Compose([T.ToTensor(), T.Normalize(mean=[0.5], std=[0.5])])
    root = str(paths.data_dir() / "medmnist")
    train = cls(split="train", transform=tf, download=False, root=root)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True)
    torch.manual_seed(0)
    model = build_model("resnet18", info["n_channels"], len(info["label"]), 28)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = torch.nn.CrossEntropyLoss()
    model.train()
    batches = (b for _ in range(1000) for b in loader)  # cycle: small datasets have few batches
    for i in range(2 + n_batches):
        if i == 2:
            t0, seen = time.perf_counter(), 0
        x, y = next(batches)
        loss = crit(model(x), y.squeeze(1).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            seen += len(x)
    train_s = time.perf_counter() - t0
    ips = seen / train_s
    # the official script evaluates train, val and test after every epoch (forward only)
    model.eval()
    t0, n_eval = time.perf_counter(), 0
    with torch.no_grad():
        for i, (x, _) in enumerate(DataLoader(train, batch_size=batch_size)):
            if i >= max(2, n_batches // 2):
                break  # a small dataset may end sooner: n_eval counts what ran
            model(x)
            n_eval += len(x)
    eval_ips = n_eval / (time.perf_counter() - t0)
    n_all = sum(info["n_samples"].values())
    epoch_train = len(train) / ips
    epoch_eval = n_all / eval_ips  # train, val and test, each once (n_all counts all three)
    return {"images_per_s": ips, "epoch_train_s": epoch_train, "epoch_eval_s": epoch_eval,
            "protocol_100_epochs_train_s": 100 * epoch_train,
            "protocol_100_epochs_with_eval_s": 100 * (epoch_train + epoch_eval),
            "eval_images_per_s": eval_ips, "timed_batches": n_batches, "n_train": len(train)}


def standard_run(flag: str, seed: int, model_name: str, epochs: int | None = None) -> dict:
    """One standard-recipe run: everything chosen on validation; test opened once, at the end."""
    data = load(flag, 28)
    model = build_classifier(model_name, data.info, 28, seed=seed)
    kw = recipe("standard", data.train, epochs)
    t0 = time.perf_counter()
    hist = train_classifier(model, data.train, data.val, progress=False, seed=seed, **kw)
    wall = time.perf_counter() - t0
    tta = evaluation_tta("standard", data.info.task)
    val = evaluate(model, data.val, tta=tta)
    test = evaluate(model, data.test.open("final evaluation of a finished benchmark run"), tta=tta)
    keep = ("auc", "acc", "ece", "bacc", "mae", "qwk", "sens", "spec")
    return {"dataset": flag, "seed": seed, "model": model_name, "epochs": kw["epochs"],
            "batch_size": kw["batch_size"], "lr": kw["lr"],
            "label_smoothing": kw["label_smoothing"], "class_weights": kw["class_weights"] is not None, "tta": tta,
            "best_epoch": hist.best_epoch,
            "train_seconds": hist.train_seconds, "fit_wall_seconds": wall,
            "images_per_s": hist.images_per_s, "params": count_parameters(model),
            "macs": count_macs(model, (data.info.n_channels, 28, 28)),
            "test": {k: v for k, v in test.items() if k in keep},
            "val": {k: v for k, v in val.items() if k in keep}}


def summarize(out: dict) -> None:
    for flag in out["datasets"]:
        runs = [r for r in out["runs"] if r["dataset"] == flag]
        if not runs:
            continue
        s = {"n_seeds": len(runs)}
        for key in ("auc", "acc", "mae", "qwk"):
            vals = [r["test"][key] for r in runs if key in r["test"]]
            if vals:
                s[key] = [float(np.mean(vals)), float(np.std(vals))]
        t = [r["fit_wall_seconds"] for r in runs]
        s["fit_wall_seconds"] = [float(np.mean(t)), float(np.std(t))]
        base, best = medmnist_baseline(flag), best_baseline(flag)[1]
        s["baseline_resnet18_28"], s["best_v2"] = base, best
        s["meets_baseline"] = bool(s["auc"][0] >= base["auc"] and s["acc"][0] >= base["acc"])
        s["meets_stretch"] = bool(s["auc"][0] >= best["auc"] and s["acc"][0] >= best["acc"])
        off = out["official"].get(flag)
        if off:
            s["speedup_vs_protocol_train"] = off["protocol_100_epochs_train_s"] / s["fit_wall_seconds"][0]
            s["speedup_vs_protocol_with_eval"] = off["protocol_100_epochs_with_eval_s"] / s["fit_wall_seconds"][0]
        out["summary"][flag] = s


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--model", default="compactresnet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=None, help="override (quick checks only)")
    ap.add_argument("--official-batches", type=int, default=8)
    ap.add_argument("--name", default="time_to_baseline")
    ap.add_argument("--resume", action="store_true", help="keep finished runs of an earlier call")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    path = common.RESULTS / f"{args.name}.json"
    old = json.loads(path.read_text()) if args.resume and path.exists() else {}
    out = {"bench": "time_to_baseline", "machine": common.machine(), "args": vars(args),
           "datasets": args.datasets, "official": old.get("official", {}), "runs": old.get("runs", []),
           "summary": {}}
    for flag in args.datasets:
        # the official speed is measured right before AND right after this dataset's runs, and
        # the faster of the two is used: the CPU is shared, so this keeps the ratio conservative
        if flag not in out["official"]:
            out["official"][flag] = official_epoch_seconds(flag, args.official_batches)
            print(flag, "official (before)", json.dumps(out["official"][flag]), flush=True)
            common.write(args.name, out)
        for seed in args.seeds:
            if any(r["dataset"] == flag and r["seed"] == seed and r["model"] == args.model for r in out["runs"]):
                continue
            r = standard_run(flag, seed, args.model, args.epochs)
            r["loadavg_after"] = list(os.getloadavg())
            out["runs"].append(r)
            print(flag, seed, f"{r['fit_wall_seconds']:.0f}s", json.dumps(r["test"]), flush=True)
            summarize(out)
            common.write(args.name, out)
        if "after" not in out["official"][flag]:
            after = official_epoch_seconds(flag, args.official_batches)
            print(flag, "official (after)", json.dumps(after), flush=True)
            before = {k: v for k, v in out["official"][flag].items() if k not in ("before", "after")}
            out["official"][flag] = {**(after if after["images_per_s"] > before["images_per_s"] else before),
                                     "before": before, "after": after}
            summarize(out)
            common.write(args.name, out)
    summarize(out)
    common.finish(out["machine"])
    print(json.dumps(out["summary"], indent=1))
    print("wrote", common.write(args.name, out))


if __name__ == "__main__":
    main()

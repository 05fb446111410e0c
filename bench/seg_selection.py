"""Choose chapter 05's `standard` recipes on VALIDATION only: DRIVE's network and patch size,
and DSB2018-96's number of epochs. Each selection's rule is fixed before its runs (RULES).

    python bench/seg_selection.py --dataset drive --threads 2 [--only NAME] [--seeds 0 1]
    python bench/seg_selection.py --dataset dsb2018_96 --threads 1 --only e6 e8   # one process per core
    python bench/seg_selection.py --dataset dsb2018_96 --merge                     # then merge their files

Results: bench/results/<dataset>_selection.json (parallel processes write <dataset>_selection_<tag>.json).
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

from medlib.cost import count_parameters  # noqa: E402
from medlib.data.segmentation import load_segmentation  # noqa: E402
from medlib.metrics import segmentation as M  # noqa: E402
from medlib.models.unet import build_unet  # noqa: E402
from medlib.recipes import segmentation as R  # noqa: E402

RULES = {
    "drive": """Chapter 05 on DRIVE took 12.5 minutes with a 1.94 M-parameter U-Net (width 16, depth 4).
Smaller networks train faster per patch (small published models such as LW-Net reach
F1 0.83 with 68 k parameters); the candidates below are sized to a similar training cost
(about 150 s on 2 cores, from a throughput measurement) with different width/depth/patch
choices; their measured training times are recorded. Rule, fixed before the runs: the
candidate with the highest mean validation pooled pixel AUC over 2 seeds (the 4 validation
images 37-40; the selection metric of the chapter) is chosen; ties within 0.001 go to the
cheaper one. The test images are never loaded. Results: bench/results/drive_selection.json.""",
    "dsb2018_96": """Chapter 05 on DSB2018-96 trained its U-Net (width 16, depth 3) for 6 epochs; at that
budget its mean validation Dice per image (0.845, seed 0) was below Otsu's threshold (0.851)
and still rising at the last epoch. Candidates: 6, 8 and 10 epochs (10 keeps the chapter
within 5 minutes on 2 cores). Rule, fixed before the runs: the highest mean validation Dice
per image (the chapter's selection metric, at the chapter's threshold 0.5 and its TTA choice)
over 2 seeds wins; ties within 0.002 go to the cheaper one. The test images are never loaded.
Results: bench/results/dsb2018_96_selection.json.""",
}
METRIC = {"drive": ("auc_pooled", 0.001), "dsb2018_96": ("dice", 0.002)}
# DRIVE: sized to about 150 s of training each on 2 quiet cores (measured throughput: width 8 /
# depth 4 ~0.6 Mpx/s, width 16 about half of that); the previous recipe took ~540 s.
CANDIDATES = {
    "drive": {
        "w8d4-p96": dict(width=8, depth=4, patch=96, batch=8, batches=60, epochs=20),
        "w8d3-p96": dict(width=8, depth=3, patch=96, batch=8, batches=60, epochs=24),
        "w16d4-p96": dict(width=16, depth=4, patch=96, batch=8, batches=60, epochs=10),
        "w8d4-p64": dict(width=8, depth=4, patch=64, batch=16, batches=60, epochs=20),
    },
    "dsb2018_96": {"e6": dict(epochs=6), "e8": dict(epochs=8), "e10": dict(epochs=10)},
}


def one_run(dataset: str, name: str, seed: int, data) -> dict:
    recipe = {**R.defaults(dataset)["standard"], **CANDIDATES[dataset][name]}
    torch.manual_seed(seed)
    model = build_unet("unet", data.in_channels, data.out_channels, width=recipe["width"], depth=recipe["depth"])
    t0 = time.perf_counter()
    hist = R.train_segmenter(model, data, data.train, data.val, recipe, device="cpu", seed=seed)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tta, threshold, table = R.choose_tta_and_threshold(model, data, data.val, "cpu", recipe["depth"])
    val = R.val_metrics(model, data, data.val, "cpu", recipe["depth"], tta=tta, threshold=threshold)
    trivial = R.trivial_scores(data.val, dataset)
    base = M.summarize(trivial, data.val.masks > 0, data.val.fov, 0.5, with_hd95=False)
    return {"candidate": name, "seed": seed, **CANDIDATES[dataset][name], "params": count_parameters(model),
            "train_seconds": train_s, "choose_seconds": time.perf_counter() - t0, "best_epoch": hist.best_epoch,
            "val_best_epoch": {k[4:]: v for k, v in hist.epochs[hist.best_epoch - 1].items() if k.startswith("val_")},
            "tta": tta, "threshold": threshold, "tta_table": {str(k): v for k, v in table.items()},
            "val_at_threshold": val, "trivial_val_at_0.5": M.as_record(*base)}


def decide(dataset: str, runs: list[dict]) -> dict:
    metric, tie = METRIC[dataset]
    table = {}
    for name in CANDIDATES[dataset]:
        rs = [r for r in runs if r["candidate"] == name]
        if rs:
            table[name] = {"n": len(rs), "train_seconds": float(np.mean([r["train_seconds"] for r in rs])),
                           "params": rs[0]["params"]}
            for k in dict.fromkeys((metric, "auc_pooled", "dice_pooled", "dice")):
                v = [r["val_at_threshold"][k] for r in rs]
                table[name][k] = [float(np.mean(v)), float(np.std(v))]
    complete = {k: v for k, v in table.items() if v["n"] >= 2}
    if not complete:
        return {"status": "incomplete", "metric": metric, "table": table}
    top = max(v[metric][0] for v in complete.values())
    near = [k for k, v in complete.items() if v[metric][0] >= top - tie]
    chosen = min(near, key=lambda k: complete[k]["train_seconds"])
    return {"status": "decided" if len(complete) == len(CANDIDATES[dataset]) else "partial", "metric": metric,
            "chosen": chosen, "recipe": CANDIDATES[dataset][chosen], "table": table}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=list(CANDIDATES), default="drive")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--only", nargs="+", default=None)
    ap.add_argument("--tag", default="", help="write <dataset>_selection_<tag>.json (parallel processes)")
    ap.add_argument("--merge", action="store_true", help="merge <dataset>_selection_*.json into <dataset>_selection.json")
    args = ap.parse_args(argv)
    ds, name = args.dataset, f"{args.dataset}_selection"
    if args.merge:
        parts = [json.loads(p.read_text()) for p in sorted(common.RESULTS.glob(f"{name}_*.json"))]
        out = {"bench": name, "rule": RULES[ds], "machines": [p["machine"] for p in parts],
               "runs": [r for p in parts for r in p["runs"]]}
        out["decision"] = decide(ds, out["runs"])
        print(json.dumps(out["decision"], indent=1))
        print("wrote", common.write(name, out))
        return
    torch.set_num_threads(args.threads)
    out_name = f"{name}_{args.tag}" if args.tag else name
    path = common.RESULTS / f"{out_name}.json"
    out = json.loads(path.read_text()) if path.exists() else {"bench": name, "rule": RULES[ds],
                                                              "machine": common.machine(), "runs": []}
    data = load_segmentation(ds)
    for cand in args.only or list(CANDIDATES[ds]):
        for seed in args.seeds:
            if any(r["candidate"] == cand and r["seed"] == seed for r in out["runs"]):
                continue
            r = one_run(ds, cand, seed, data)
            out["runs"].append(r)
            print(cand, seed, f"{r['train_seconds']:.0f}s", json.dumps(r["val_at_threshold"]), flush=True)
            out["decision"] = decide(ds, out["runs"])
            common.write(out_name, out)
    out["decision"] = decide(ds, out["runs"])
    common.finish(out["machine"])
    print(json.dumps(out["decision"], indent=1))
    print("wrote", common.write(out_name, out))


if __name__ == "__main__":
    main()

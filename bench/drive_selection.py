"""Choose DRIVE's `standard` recipe for a 5-minute chapter on 2 CPU cores, on VALIDATION only.

Chapter 05 on DRIVE took 12.5 minutes with a 1.94 M-parameter U-Net (width 16, depth 4).
Smaller networks train faster per patch (small published models such as LW-Net reach
F1 0.83 with 68 k parameters); the candidates below are sized to a similar training cost
(about 150 s on 2 cores, from a throughput measurement) with different width/depth/patch
choices; their measured training times are recorded. Rule, fixed before the runs: the
candidate with the highest mean validation pooled pixel AUC over 2 seeds (the 4 validation
images 37-40; the selection metric of the chapter) is chosen; ties within 0.001 go to the
cheaper one. The test images are never loaded. Results: bench/results/drive_selection.json.

    python bench/drive_selection.py --threads 2 [--only NAME] [--seeds 0 1]
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
from medlib.data.segmentation import load_drive  # noqa: E402
from medlib.models.unet import build_unet  # noqa: E402
from medlib.recipes import segmentation as R  # noqa: E402

BASE = dict(R.DRIVE["standard"])
# Sized to about 150 s of training each on 2 quiet cores (measured throughput: width 8 / depth 4
# ~0.6 Mpx/s, width 16 about half of that); the previous recipe (width 16, 28 epochs) took ~540 s.
CANDIDATES = {
    "w8d4-p96": dict(width=8, depth=4, patch=96, batch=8, batches=60, epochs=20),
    "w8d3-p96": dict(width=8, depth=3, patch=96, batch=8, batches=60, epochs=24),
    "w16d4-p96": dict(width=16, depth=4, patch=96, batch=8, batches=60, epochs=10),
    "w8d4-p64": dict(width=8, depth=4, patch=64, batch=16, batches=60, epochs=20),
}


def one_run(name: str, seed: int, data) -> dict:
    recipe = {**BASE, **CANDIDATES[name]}
    torch.manual_seed(seed)
    model = build_unet("unet", data.in_channels, data.out_channels, width=recipe["width"], depth=recipe["depth"])
    t0 = time.perf_counter()
    hist = R.train_segmenter(model, data, data.train, data.val, recipe, device="cpu", seed=seed)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tta, threshold, table = R.choose_tta_and_threshold(model, data, data.val, "cpu", recipe["depth"])
    val = R.val_metrics(model, data, data.val, "cpu", recipe["depth"], tta=tta, threshold=threshold)
    return {"candidate": name, "seed": seed, **CANDIDATES[name], "params": count_parameters(model),
            "train_seconds": train_s, "choose_seconds": time.perf_counter() - t0, "best_epoch": hist.best_epoch,
            "val_best_epoch": {k[4:]: v for k, v in hist.epochs[hist.best_epoch - 1].items() if k.startswith("val_")},
            "tta": tta, "threshold": threshold, "tta_table": {str(k): v for k, v in table.items()},
            "val_at_threshold": val}


def decide(runs: list[dict]) -> dict:
    table = {}
    for name in CANDIDATES:
        rs = [r for r in runs if r["candidate"] == name]
        if rs:
            auc = [r["val_at_threshold"]["auc_pooled"] for r in rs]
            dice = [r["val_at_threshold"]["dice_pooled"] for r in rs]
            table[name] = {"n": len(rs), "auc_pooled": [float(np.mean(auc)), float(np.std(auc))],
                           "dice_pooled": [float(np.mean(dice)), float(np.std(dice))],
                           "train_seconds": float(np.mean([r["train_seconds"] for r in rs])),
                           "params": rs[0]["params"]}
    complete = {k: v for k, v in table.items() if v["n"] >= 2}
    if not complete:
        return {"status": "incomplete", "table": table}
    top = max(v["auc_pooled"][0] for v in complete.values())
    near = [k for k, v in complete.items() if v["auc_pooled"][0] >= top - 0.001]
    chosen = min(near, key=lambda k: complete[k]["train_seconds"])
    return {"status": "decided" if len(complete) == len(CANDIDATES) else "partial", "chosen": chosen,
            "recipe": CANDIDATES[chosen], "table": table}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--only", nargs="+", default=list(CANDIDATES))
    ap.add_argument("--name", default="drive_selection")
    ap.add_argument("--merge", action="store_true", help="merge drive_selection_*.json into drive_selection.json")
    args = ap.parse_args(argv)
    if args.merge:
        parts = [json.loads(p.read_text()) for p in sorted(common.RESULTS.glob(f"{args.name}_*.json"))]
        out = {"bench": "drive_selection", "rule": __doc__.split("\n\n")[1],
               "machines": [p["machine"] for p in parts], "runs": [r for p in parts for r in p["runs"]]}
        out["decision"] = decide(out["runs"])
        print(json.dumps(out["decision"], indent=1))
        print("wrote", common.write(args.name, out))
        return
    torch.set_num_threads(args.threads)
    path = common.RESULTS / f"{args.name}.json"
    out = json.loads(path.read_text()) if path.exists() else {"bench": "drive_selection", "rule": __doc__.split("\n\n")[1],
                                                              "machine": common.machine(), "runs": []}
    data = load_drive()
    for name in args.only:
        for seed in args.seeds:
            if any(r["candidate"] == name and r["seed"] == seed for r in out["runs"]):
                continue
            r = one_run(name, seed, data)
            out["runs"].append(r)
            print(name, seed, f"{r['train_seconds']:.0f}s", json.dumps(r["val_at_threshold"]), flush=True)
            out["decision"] = decide(out["runs"])
            common.write(args.name, out)
    out["decision"] = decide(out["runs"])
    common.finish(out["machine"])
    print(json.dumps(out["decision"], indent=1))
    print("wrote", common.write(args.name, out))


if __name__ == "__main__":
    main()

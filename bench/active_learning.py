"""Chapter 11's active-learning curves from a sweep's runs: validation AUC against labelled
images for every query strategy, mean and 95 % t-interval over seeds, and the labels each needed
to reach 95 % (and 99 %) of the full-data validation AUC. Nothing is trained here.

    medlib sweep sweeps/11_active_learning.yaml --out runs/11_al --workers 1
    python bench/active_learning.py runs/11_al
    # -> results/11_active_learning_<dataset>_<size>.json (every run's curve and the summary) and .png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medlib.recipes import trust as rt  # noqa: E402
from medlib.results import load_results  # noqa: E402
from medlib.viz import trust as vt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", help="the sweep's runs folder (the --out of medlib sweep)")
    ap.add_argument("--profile", default="standard")
    args = ap.parse_args(argv)
    recs = [r for r in load_results(args.runs) if r.get("chapter") == "11_trust" and r.get("profile") == args.profile
            and len(r.get("active_learning", {}).get("strategies", [])) > 2]
    if not recs:
        print(f"no 11_trust {args.profile} runs with query 'all' under {args.runs}", file=sys.stderr)
        return 1
    for (dataset, size) in sorted({(r["dataset"], r["size"]) for r in recs}):
        newest = {}  # a rerun of a seed (another commit) replaces the earlier one
        for r in sorted((r for r in recs if (r["dataset"], r["size"]) == (dataset, size)), key=lambda r: r["timestamp"]):
            newest[r["seed"]] = r
        part = [newest[s] for s in sorted(newest)]
        s95, s99 = rt.al_summary(part, 0.95), rt.al_summary(part, 0.99)
        al = part[0]["active_learning"]
        commits = sorted({r.get("git_commit") or "" for r in part})
        out = {"bench": "11_active_learning", "dataset": dataset, "size": size, "profile": args.profile,
               "about": "validation AUC by labelled images per query strategy (a fresh model per round, "
                        f"{al['images_per_round']} images seen per round), mean and 95% t-interval over seeds; "
                        "labels to reach 95% / 99% of each seed's full-data validation AUC; the test split is not used",
               "n_runs": len(part), "seeds": sorted(newest), "commit": commits[-1], "commits": commits,
               "pool": al["pool"], "sizes": al["sizes"], "full_auc": [r["active_learning"]["full_auc"] for r in part],
               "run_seconds": [r.get("notebook_seconds") for r in part],
               "seconds_per_strategy": {q: [r["active_learning"]["seconds"][q] for r in part] for q in al["strategies"]},
               "share_95": s95, "share_99": {q: {k: v[k] for k in ("labels_to_reach", "labels_to_reach_mean",
                                                                     "saving_vs_random") if k in v}
                                             for q, v in s99.items()}}
        path = RESULTS / f"11_active_learning_{dataset}_{size}.json"
        path.write_text(json.dumps(out, indent=1, default=float) + "\n")
        full = sum(out["full_auc"]) / len(out["full_auc"])
        bands = {q: (v["n_labels"], [a["mean"] for a in v["auc"]], [a["lo"] for a in v["auc"]],
                     [a["hi"] for a in v["auc"]]) for q, v in s95.items()}
        f = vt.learning_curves({q: {} for q in s95}, full, 0.95 * full, bands=bands,
                               title=f"{dataset} ({size} px): active learning, {len(part)} seeds, 95% t-intervals")
        f.savefig(path.with_suffix(".png"), dpi=120)
        plt.close(f)
        print(f"wrote {path.name} ({len(part)} runs) and its figure")
        for q, v in s95.items():
            print(f"  {q:17s} labels to 95%: {v['labels_to_reach']}  to 99%: {s99[q]['labels_to_reach']}  "
                  f"mean AUC {v['mean_auc']['mean']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

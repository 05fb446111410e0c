"""Chapter 06's label-efficiency curve from a sweep's runs: test AUC by share of the target's
training labels for from scratch, each source (full fine-tuning) and each strategy (on the
encoder validation chose), mean and 95 % t-interval over seeds. Nothing is trained here.

    medlib sweep sweeps/06_label_efficiency.yaml --out runs/06_curve --workers 2
    python bench/label_efficiency.py runs/06_curve
    # -> results/06_label_efficiency_<target>_<size>.json (every run's point and the summary) and .png

Chapter 06 draws the recorded curve when its own runs folder has fewer than three seeds per point.
"""

from __future__ import annotations

import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medlib.recipes import transfer as rt  # noqa: E402
from medlib.results import load_results  # noqa: E402
from medlib.viz import transfer as vt  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", help="the sweep's runs folder (the --out of medlib sweep)")
    ap.add_argument("--profile", default="standard")
    args = ap.parse_args(argv)
    recs = [r for r in load_results(args.runs) if r.get("chapter") == rt.CHAPTER and r.get("profile") == args.profile]
    if not recs:
        print(f"no {rt.CHAPTER} {args.profile} runs under {args.runs}", file=sys.stderr)
        return 1
    for (target, size) in sorted({(r["dataset"], r["size"]) for r in recs}):
        newest = {}  # a rerun of a point (another commit) replaces the earlier one
        for r in sorted((r for r in recs if (r["dataset"], r["size"]) == (target, size) and rt.on_curve(r)),
                        key=lambda r: r["timestamp"]):
            newest[(r["params"]["label_fraction"], r["seed"])] = r
        part = list(newest.values())
        pts = rt.curve_points(part)
        summary = rt.curve_summary(pts)
        commits = sorted({r.get("git_commit") or "" for r in part})
        out = {"bench": "06_label_efficiency", "target": target, "size": size, "profile": args.profile,
               "about": "test AUC by share of the training labels; mean and 95% t-interval over seeds; "
                        "every model chosen on validation before the test split was opened once per run",
               "n_runs": len(part), "commit": commits[-1], "commits": commits,
               "seeds": sorted({r["seed"] for r in part}),
               "labelled": {str(r["params"]["label_fraction"]): r.get("labelled") for r in part},
               "chosen": [{"fraction": r["params"]["label_fraction"], "seed": r["seed"], "source": r.get("source_chosen"),
                           "strategy": r.get("strategy_chosen")} for r in part],
               "points": pts.to_dict(orient="records"), "summary": summary.to_dict(orient="records"),
               "paired_at_10pct": rt.paired_difference(pts, 0.1)}
        path = rt.bench_curve_path(target, size)
        path.write_text(json.dumps(out, indent=1) + "\n")
        for panel, title in (("sources", "sources (full fine-tuning)"), ("strategies", "strategies (validation's encoder)")):
            f = vt.curves(summary[summary["panel"].isin([panel, "reference"])],
                          title=f"{target} ({size} px): {title}; {len(out['seeds'])} seeds, 95% t-intervals")
            f.savefig(path.with_name(path.stem + f"_{panel}.png"), dpi=120)
            plt.close(f)
        print(f"wrote {path.name} ({len(part)} runs) and its figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())

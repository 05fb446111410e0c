"""Chapter 04's tables from its recorded runs (bench/results/runs/04_gans_<dataset>_<profile>_cpu_seed*.json,
made by bench/record_runs.py): the evaluation table (DCGAN and WGAN-GP side by side: domain FID with
its floor and the training-images reference, KID, precision/recall, conditional accuracy, TSTR),
the usefulness table (the small-label trial, one seed per chapter run) and the times, as mean ± std
over the runs' seeds. Prints Markdown for bench/README.md; computes nothing new.

    python bench/gans.py [--dataset pneumoniamnist] [--profile standard]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import ms  # noqa: E402

from medlib.metrics.common import t_interval  # noqa: E402

RUNS = Path(__file__).resolve().parent / "results" / "runs"
GANS = ("conditional DCGAN", "conditional WGAN-GP")
REFS = ("floor: real half B vs half A", "validation images vs half A")
COLUMNS = ("domain FID", "FID sd (10 halves)", "KID", "precision", "recall", "conditional accuracy", "TSTR AUC", "TSTR / TRTR", "train s")


def records(dataset: str, profile: str) -> list[dict]:
    recs = [json.loads(p.read_text()) for p in sorted(RUNS.glob(f"04_gans_{dataset}_{profile}_cpu_seed*.json"))]
    return [r for r in recs if not r.get("reused")]


def evaluation_table(recs: list[dict]) -> str:
    lines = ["| | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in (*GANS, *REFS):
        cells = []
        for col in COLUMNS:
            vals = [r["evaluation_test"].get(col, {}).get(row) for r in recs]
            cells.append(ms(vals, "{:.0f}" if col == "train s" else "{:.3f}"))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    trtr = ms([r["metrics"]["test"]["trtr_auc"] for r in recs])
    lines.append(f"| TRTR: the judge on real images | | | | | | {trtr} | 1 | |")
    return "\n".join(lines)


def trial_table(recs: list[dict]) -> str:
    rows, diffs = [], []
    for r in recs:
        t = r["trial"]
        for s, a, b in zip(t["seeds"], t["subset_auc"], t["subset_gan_auc"]):
            rows.append(f"| {s} | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
            diffs.append(b - a)
    share = recs[0]["trial"]["share"] if recs else float("nan")
    ci = t_interval(diffs)
    base = [a for r in recs for a in r["trial"]["subset_auc"]]
    aug = [b for r in recs for b in r["trial"]["subset_gan_auc"]]
    head = [f"| seed | {share:.0%} of the labels | + samples of a GAN trained on them | difference |", "|---|---|---|---|"]
    foot = f"| mean ± std ({len(diffs)} seeds) | {ms(base)} | {ms(aug)} | {ms(diffs, '{:+.3f}')} |"
    interval = f"95 % t-interval of the difference: {ci['lo']:+.3f} to {ci['hi']:+.3f}" if ci["n"] > 1 else ""
    return "\n".join(head + rows + [foot]) + ("\n\n" + interval if interval else "")


def times_table(recs: list[dict]) -> str:
    keys = (("run_seconds", "`medlib run` (whole chapter)"), ("judge_seconds", "judge (TRTR)"),
            ("collapse_seconds", "provoked collapse"), ("trial_seconds", "small-label trial"))
    lines = ["| part | seconds (mean ± std) |", "|---|---|"]
    for k, name in keys:
        lines.append(f"| {name} | {ms([r.get(k) for r in recs], '{:.0f}')} |")
    for g in GANS:
        lines.append(f"| {g} | {ms([r['gan_seconds'][g] for r in recs], '{:.0f}')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="pneumoniamnist")
    ap.add_argument("--profile", default="standard")
    a = ap.parse_args(argv)
    recs = records(a.dataset, a.profile)
    if not recs:
        print(f"no recorded runs match bench/results/runs/04_gans_{a.dataset}_{a.profile}_cpu_seed*.json: "
              "record them with `python bench/record_runs.py --only 04_gans`", file=sys.stderr)
        return 1
    seeds = sorted(r["seed"] for r in recs)
    print(f"<!-- bench/gans.py --dataset {a.dataset} --profile {a.profile}: seeds {seeds}, commit "
          f"{', '.join(sorted({r['git_commit'][:7] for r in recs}))} -->\n")
    print(f"**Evaluation** (test split; {len(recs)} runs, seeds {seeds}):\n\n" + evaluation_table(recs) + "\n")
    print("**Usefulness: a small labelled subset** (test AUC):\n\n" + trial_table(recs) + "\n")
    print("**Times** (2 CPU cores):\n\n" + times_table(recs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

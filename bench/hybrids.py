"""Chapter 08's tables and Pareto figure from its recorded runs
(bench/results/runs/08_hybrids_<dataset>_<profile>_cpu_seed*.json, made by bench/record_runs.py):
per classification dataset, every model's test AUC / ACC with its cost beside MedMNIST v2's best
and auto-sklearn rows; each hybrid against its better parent (chosen on validation in each run),
with a verdict over the seeds; the segmentation table (TransUNet vs U-Net vs MONAI's UNETR); the
times. Prints Markdown for bench/README.md; computes nothing new.

    python bench/hybrids.py [--profile standard] [--figure bench/results/08_pareto_pneumoniamnist.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import ms  # noqa: E402

from medlib.baselines import medmnist_baselines  # noqa: E402
from medlib.metrics.common import t_interval  # noqa: E402

RUNS = Path(__file__).resolve().parent / "results" / "runs"
FEATURES = "features (learner chosen on validation)"


def records(profile: str) -> dict[str, list[dict]]:
    """{dataset: [record, ...]} of chapter 08's runs in `profile` (reused runs left out)."""
    out: dict[str, list[dict]] = {}
    for p in sorted(RUNS.glob(f"08_hybrids_*_{profile}_cpu_seed*.json")):
        r = json.loads(p.read_text())
        if not r.get("reused"):
            out.setdefault(r["dataset"], []).append(r)
    return out


def _name(n: str) -> str:
    return FEATURES if n.startswith("features (") else n


def classification_table(recs: list[dict]) -> str:
    tables = [{_name(k): v for k, v in r["table"].items()} for r in recs]
    names = list(tables[0])
    lines = ["| model | test AUC | test ACC | parameters (features) | train s |", "|---|---|---|---|---|"]
    for n in names:
        rows = [t[n] for t in tables if n in t]
        params = ms([r["parameters (or features)"] for r in rows], "{:,.0f}").replace(" ± 0", "")
        lines.append(f"| {n} | {ms([r['auc'] for r in rows])} | {ms([r['acc'] for r in rows])} | {params} | "
                     f"{ms([r['train s'] for r in rows], '{:.0f}')} |")
    learners = ", ".join(r["learner"] for r in recs)
    v2 = medmnist_baselines(recs[0]["dataset"])
    best_auc = max(v2.items(), key=lambda kv: kv[1]["auc"])
    best_acc = max(v2.items(), key=lambda kv: kv[1]["acc"])
    best = [("best AUC and ACC", best_auc)] if best_auc[0] == best_acc[0] else [("best AUC", best_auc), ("best ACC", best_acc)]
    for label, (row, vals) in best:
        lines.append(f"| MedMNIST v2, {label}: {row} | {vals['auc']:.3f} | {vals['acc']:.3f} | | |")
    if "auto-sklearn" in v2 and "auto-sklearn" not in (best_auc[0], best_acc[0]):
        lines.append(f"| MedMNIST v2: auto-sklearn | {v2['auto-sklearn']['auc']:.3f} | {v2['auto-sklearn']['acc']:.3f} | | |")
    return "\n".join(lines) + f"\n\nFeature learner chosen on validation, per seed: {learners}."


def verdict_table(recs: list[dict]) -> str:
    lines = ["| hybrid | better parent (validation), per seed | AUC − parent's, per seed | mean, 95 % t-interval "
             "over seeds | seeds whose paired bootstrap CI excludes 0 | extra train s | earned its cost here? |",
             "|---|---|---|---|---|---|---|"]
    for h in recs[0]["verdicts"]:
        vs = [r["verdicts"][h] for r in recs]
        d = [v["AUC difference"] for v in vs]
        ci = t_interval(d)
        above = sum(float(v["95% CI"].split(" to ")[0]) > 0 for v in vs)
        below = sum(float(v["95% CI"].split(" to ")[1]) < 0 for v in vs)
        extra = float(np.mean([v["extra train s"] for v in vs]))
        if ci["lo"] > 0:
            word = f"yes by this rule: {ci['mean']:+.3f} AUC, consistently, for {extra:+.0f} s"
        elif ci["hi"] < 0:
            word = "no: worse than its parent"
        else:
            word = "no: no different from its parent over the seeds" + (", at a higher cost" if extra > 0 else "")
        parents = ["features" if v["best parent"].startswith("features (") else v["best parent"] for v in vs]
        parents = f"{parents[0]} (every seed)" if len(set(parents)) == 1 else ", ".join(parents)
        lines.append(f"| {h} | {parents} | {', '.join(f'{x:+.3f}' for x in d)} | "
                     f"{ci['mean']:+.3f} ({ci['lo']:+.3f} to {ci['hi']:+.3f}) | {above} above, {below} below of "
                     f"{len(vs)} | {extra:+.0f} | {word} |")
    return "\n".join(lines)


def v2_check(recs: list[dict]) -> str:
    """The issue's 3D target: the fused model above the best v2 result for AUC or ACC."""
    v2 = medmnist_baselines(recs[0]["dataset"])
    best = {m: max(v[m] for v in v2.values()) for m in ("auc", "acc")}
    fused = {m: float(np.mean([r["metrics"]["test"][f"fused_{m}"] for r in recs])) for m in ("auc", "acc")}
    return (f"Early fusion (mean of {len(recs)} seeds): AUC {fused['auc']:.4f} vs best v2 {best['auc']:.3f} "
            f"({'above' if fused['auc'] > best['auc'] else 'not above'}); ACC {fused['acc']:.4f} vs best v2 "
            f"{best['acc']:.3f} ({'above' if fused['acc'] > best['acc'] else 'not above'}).")


def segmentation_table(recs: list[dict]) -> str:
    names = list(recs[0]["segmentation"])
    lines = ["| model | test Dice (per image) | pooled Dice | parameters | train s |", "|---|---|---|---|---|"]
    for n in names:
        rows = [r["segmentation"][n] for r in recs if n in r["segmentation"]]
        lines.append(f"| {n} | {ms([x['dice'] for x in rows])} | {ms([x['dice_pooled'] for x in rows])} | "
                     f"{rows[0]['parameters']:,} | {ms([x['train s'] for x in rows], '{:.0f}')} |")
    d = [r["metrics"]["test"]["dice"] - r["metrics"]["test"]["unet_dice"] for r in recs]
    ci = t_interval(d)
    spread = f"; mean {ci['mean']:+.3f}, 95 % t-interval {ci['lo']:+.3f} to {ci['hi']:+.3f}" if len(d) > 1 else " (one run)"
    return "\n".join(lines) + f"\n\nTransUNet − U-Net Dice per seed: {', '.join(f'{x:+.3f}' for x in d)}{spread}."


def times_table(by_ds: dict[str, list[dict]]) -> str:
    lines = ["| run | seeds | `medlib run` s | notebook s |", "|---|---|---|---|"]
    for ds, recs in by_ds.items():
        lines.append(f"| {ds} | {len(recs)} | {ms([r.get('run_seconds') for r in recs], '{:.0f}')} | "
                     f"{ms([r.get('notebook_seconds') for r in recs], '{:.0f}')} |")
    return "\n".join(lines)


def pareto_figure(dataset: str, profile: str, path: Path) -> None:
    """Every recorded classification model of the suite on `dataset` (mean ± sd over its seeds):
    test AUC against training seconds, the Pareto front drawn, each point labelled."""
    import matplotlib

    matplotlib.use("Agg")

    from medlib import report as rep
    from medlib.viz.benchmark import pareto_plot

    recs = [r for r in rep.load_records(RUNS) if r.get("dataset") == dataset and r.get("profile") == profile
            and "auc" in (r.get("metrics") or {}).get("test", {})]
    rows = []
    for r in recs:  # chapter 08's runs hold every model of the run: one point per model
        if r["chapter"] == "08_hybrids":
            rows += [dict(r, model="handcrafted features" if n.startswith("features (") else n, train_seconds=v["train s"],
                          metrics={"test": {"auc": v["auc"]}})
                     for n, v in r["table"].items()]
        else:
            rows.append(r)
    pts = rep.cost_points(rep.summarise(rep.runs_frame(rows), across_code=True), "auc", "train_seconds")
    fig = pareto_plot(pts, "auc", "train_seconds",
                      title=f"{dataset}, {profile}: every recorded classification model of the suite (bold: Pareto front)")
    fig.savefig(path, dpi=120)
    print(f"\n<!-- figure written: {path.name} ({len(pts)} models) -->")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--figure", type=Path, help="also draw the Pareto figure of PneumoniaMNIST's records to this path")
    a = ap.parse_args(argv)
    by_ds = records(a.profile)
    if not by_ds:
        print(f"no recorded runs match bench/results/runs/08_hybrids_*_{a.profile}_cpu_seed*.json: "
              "record them with `python bench/record_runs.py --only 08_hybrids`", file=sys.stderr)
        return 1
    commits = sorted({r["git_commit"][:7] for recs in by_ds.values() for r in recs})
    print(f"<!-- bench/hybrids.py --profile {a.profile}: commits {', '.join(commits)} -->\n")
    order = sorted(by_ds, key=lambda d: (d != "pneumoniamnist", bool(by_ds[d][0].get("segmentation")), d == "drive", d))
    by_ds = {d: by_ds[d] for d in order}  # the default path first, segmentation last
    for ds, recs in by_ds.items():
        seeds = sorted(r["seed"] for r in recs)
        if "segmentation" in recs[0] and recs[0]["segmentation"]:
            print(f"**{ds}: segmentation** (test split; {len(recs)} run{'s' if len(recs) > 1 else ''}, seeds {seeds}):\n\n{segmentation_table(recs)}\n")
            continue
        print(f"**{ds}** (test split; {len(recs)} run{'s' if len(recs) > 1 else ''}, seeds {seeds}; mean ± sd over seeds):\n\n"
              f"{classification_table(recs)}\n")
        if ds.endswith("3d"):
            print(v2_check(recs) + "\n")
        print(f"Each hybrid against its better parent:\n\n{verdict_table(recs)}\n")
    print("**Times** (2 CPU cores):\n\n" + times_table(by_ds))
    if a.figure:
        pareto_figure("pneumoniamnist", a.profile, a.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`medlib report`: every recorded run of a folder, as mean ± std over seeds per configuration,
beside the published baselines (chapter 10 explains how to read it).

A configuration is everything but the seed: chapter, dataset, size, model, the other
parameters, profile, device kind, and the code (its fingerprint: commit + uncommitted
changes). Runs of different code are never averaged together unless asked
(`across_code=True`), and then each row says how many code versions it pools. A run that
loaded an earlier run's trained model (`reuse=True`) repeats that run's numbers: it is
counted, not averaged. std is the population std (ddof 0), as in bench/.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from medlib import paths

# The numbers each chapter's runs are listed with (bench/README's per-run table), and the
# headline among them (the first is plotted): metrics.<split>.<name>.
METRICS = {"01_cnn": ("auc", "acc"), "02_rnn": ("auc", "acc", "balanced_acc", "sensitivity", "specificity"),
           "03_autoencoders": ("anomaly_auc", "supervised_auc", "denoise_psnr", "bm3d_psnr", "denoise_ssim", "bm3d_ssim"),
           "04_gans": ("tstr_ratio", "cond_acc", "fid_domain", "fid_floor", "kid_domain", "tstr_auc", "trtr_auc",
                       "subset_auc", "subset_gan_auc"),
           "05_unet": ("dice", "dice_pooled", "auc_pooled", "sens_pooled", "spec_pooled", "hd95"),
           "06_transfer_learning": ("auc", "acc", "scratch_auc", "scratch_acc"),
           "07_vit": ("auc", "acc"),
           "08_hybrids": ("auc", "acc", "cnn_auc", "vit_auc", "fused_auc", "features_auc", "late_auc", "dice", "unet_dice"),
           "09_xai": ("auc", "acc", "pointing_gradcam", "deletion_auc_gradcam", "insertion_auc_gradcam",
                      "randomisation_spearman_gradcam"),
           "11_trust": ("auc", "acc", "ece_before", "ece_after", "auc_after", "conformal_coverage", "conformal_set_size",
                        "aurc")}
_FINE = {"sensitivity", "specificity", "denoise_ssim", "bm3d_ssim", "sens_pooled", "spec_pooled",
         "deletion_auc_gradcam", "insertion_auc_gradcam", "randomisation_spearman_gradcam"}
HEADLINE = {ch: tuple(m for m in ms if m not in _FINE) for ch, ms in METRICS.items()}
# Chapters that record facts, not a benchmark: never tabulated
NOT_BENCHMARKS = {"00_data_tour": "records data statistics", "10_benchmark": "reports the others"}
_NOT_SETTINGS = ("seed", "device", "reuse", "dataset", "size", "model", "profile")
_DETAIL_SUFFIXES = ("_lo", "_hi", "_undefined")  # CI bounds and flags: in results.json, not in tables


def load_records(root=None) -> list[dict]:
    """results.json records under `root`: a runs folder (<chapter>/<run>/results.json, with the
    run's `medlib run` seconds from run.json) or a flat folder of records (bench/results/runs)."""
    root = paths.runs_dir(root)
    if not root.is_dir():
        raise ValueError(f"no folder {root}; give a runs directory (medlib run/sweep write to runs/) "
                         "or a folder of results.json records such as bench/results/runs")
    out = []
    for p in sorted(root.rglob("results.json")) + sorted(root.glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"warning: skipping {p}: {e}")
            continue
        if not isinstance(r, dict) or "chapter" not in r or not isinstance(r.get("metrics"), dict):
            continue
        meta = p.parent / "run.json"
        if p.name == "results.json" and "run_seconds" not in r and meta.exists():
            try:
                r["run_seconds"] = json.loads(meta.read_text()).get("seconds")
            except (OSError, json.JSONDecodeError):
                pass
        r["_source"] = str(p.relative_to(root))
        out.append(r)
    return out


def _settings(params: dict) -> str:
    keep = {k: v for k, v in (params or {}).items() if k not in _NOT_SETTINGS and v is not None}
    return json.dumps(keep, sort_keys=True, default=str)


def _code(r: dict) -> str:
    commit = (r.get("git_commit") or "unknown")[:7]
    return commit + ("*" if r.get("git_dirty") else "")


def metric_names(chapter: str, frame) -> list[str]:
    """The chapter's headline metrics present in `frame`, else its first numeric ones (up to 4)."""
    if chapter in NOT_BENCHMARKS:
        return []
    named = [m for m in HEADLINE.get(chapter, ()) if m in frame and frame[m].notna().any()]
    if named:
        return named
    skip = {"chapter", "dataset", "size", "model", "settings", "profile", "device", "code", "code_key", "seed",
            "reused", "run_seconds", "train_seconds", "model_params", "source"}
    cols = [c for c in frame.columns if c not in skip and not str(c).endswith(_DETAIL_SUFFIXES)
            and frame[c].dtype.kind in "fi" and frame[c].notna().all()]
    return cols[:4]


def runs_frame(records: list[dict], split: str = "test"):
    """One row per run: the configuration, the seed, the split's numeric metrics and the cost."""
    import pandas as pd

    rows = []
    for r in records:
        m = (r.get("metrics") or {}).get(split) or {}
        row = {"chapter": r.get("chapter"), "dataset": r.get("dataset"), "size": r.get("size"),
               "model": r.get("model"), "settings": _settings(r.get("params")), "profile": r.get("profile"),
               "device": str(r.get("device") or "?").split(":")[0], "code": _code(r),
               "code_key": r.get("code_fingerprint") or r.get("git_commit") or "unknown",
               "seed": r.get("seed"), "reused": bool(r.get("reused")),
               "run_seconds": r.get("run_seconds"), "train_seconds": r.get("train_seconds"),
               "model_params": r.get("model_params"), "source": r.get("_source")}
        row.update({k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        rows.append(row)
    return pd.DataFrame(rows)


CONFIG = ["chapter", "dataset", "size", "model", "settings", "profile", "device"]


def summarise(frame, across_code: bool = False):
    """Mean, std and n over seeds per configuration (and code version unless `across_code`).

    Returns {chapter: DataFrame} with columns CONFIG, code_key (unless `across_code`), code,
    n_code, n, seeds, <metric>_mean, <metric>_std and <metric>_values for the chapter's
    metrics, run_seconds_mean/std, model_params and the records' sources."""
    import pandas as pd

    out = {}
    fresh = frame[~frame["reused"]] if len(frame) else frame
    for chapter, part in fresh.groupby("chapter", sort=True):
        metrics = metric_names(chapter, part)
        if not metrics:
            continue
        keys = CONFIG + ([] if across_code else ["code_key"])
        rows = []
        for key, g in part.fillna({"size": -1, "model": "", "dataset": ""}).groupby(keys, sort=True, dropna=False):
            row = dict(zip(keys, key))
            row["code"] = ", ".join(sorted(set(g["code"])))
            row["n_code"] = g["code_key"].nunique()
            row["n"] = len(g)
            row["seeds"] = ",".join(str(s) for s in sorted(g["seed"].dropna().astype(int)))
            row["seed_repeated"] = g["seed"].dropna().duplicated().any()
            for m in metrics + ["run_seconds", "train_seconds"]:
                v = g[m].dropna().to_numpy(float) if m in g else np.array([])
                row[f"{m}_mean"] = v.mean() if len(v) else np.nan
                row[f"{m}_std"] = v.std() if len(v) else np.nan
                row[f"{m}_values"] = v.tolist()
            row["model_params"] = g["model_params"].dropna().max() if g["model_params"].notna().any() else np.nan
            row["sources"] = g["source"].tolist()
            rows.append(row)
        table = pd.DataFrame(rows)
        table["size"] = table["size"].replace(-1, np.nan)
        table.attrs["metrics"] = metrics
        out[chapter] = table
    return out


def baselines(chapter: str, dataset: str, size, metrics: list[str]) -> dict[str, dict[str, float]]:
    """Published rows for a table: MedMNIST v2 (ResNet-18 at the run's size, best of v2) for
    auc/acc, the DRIVE anchors for auc_pooled/dice_pooled."""
    from medlib.baselines import DRIVE_BASELINES, MEDMNIST_V2, best_baseline

    rows = {}
    if dataset in MEDMNIST_V2 and {"auc", "acc"} & set(metrics):
        model = "ResNet-18+3D" if dataset.endswith("3d") else ("ResNet-18 (224)" if (size or 28) >= 128 else "ResNet-18 (28)")
        rows[f"MedMNIST v2 {model}"] = MEDMNIST_V2[dataset][model]
        rows["MedMNIST v2, best of any model"] = best_baseline(dataset)[1]
    if dataset == "drive" and {"auc_pooled", "dice_pooled"} & set(metrics):
        rows.update({f"DRIVE: {k}": v for k, v in DRIVE_BASELINES.items()})
    return rows


def bars_figure(table, chapter: str, metric: str | None = None, ax=None):
    """A chapter's summary as bars (medlib.viz.benchmark.bars), with its first published row
    per dataset as a line. None when there is nothing to draw."""
    from medlib.viz.benchmark import bars

    metric = metric or table.attrs["metrics"][0]
    refs = {}
    for d, part in table.groupby("dataset", sort=False):
        rows = [(name, v[metric]) for name, v in baselines(chapter, d, part["size"].iloc[0], [metric]).items()
                if metric in v]
        if rows:
            refs[d] = rows[0]
    return bars(table, chapter, metric, _varying_settings(table), refs, ax=ax)


def cost_column(table) -> str:
    """'run_seconds_mean' (the `medlib run` clock) where a summary has it, else 'train_seconds_mean'
    (notebooks run by hand or by nbval write no run.json)."""
    return "run_seconds_mean" if "run_seconds_mean" in table and table["run_seconds_mean"].notna().any() \
        else "train_seconds_mean"


def pareto_front(cost, score) -> np.ndarray:
    """True for each configuration that no cheaper (or equally cheap) one matches: sorted by cost,
    best score first among equal costs, it scores higher than everything before it (chapter 10
    writes this by hand)."""
    cost, score = np.asarray(cost, float), np.asarray(score, float)
    out = np.zeros(len(cost), bool)
    best = -np.inf
    for i in np.lexsort((-score, cost)):
        if score[i] > best:
            out[i], best = True, score[i]
    return out


def cost_points(tables: dict, metric: str = "auc", cost: str | None = None):
    """Every configuration with `metric` and a cost, one row each (chapter, dataset, model,
    profile, n, <cost>_mean/std, <metric>_mean/std) and `front`: on its dataset's Pareto front.
    cost: "run_seconds", "train_seconds" or "model_params"; None -> `cost_column`. `smoke` rows
    are left out when another profile is present (they are tests, not results)."""
    import pandas as pd

    parts = [t.assign(chapter=ch) for ch, t in tables.items() if f"{metric}_mean" in t]
    if not parts:
        return pd.DataFrame()
    pts = pd.concat(parts, ignore_index=True)
    cost = cost or cost_column(pts).removesuffix("_mean")
    c = cost if cost == "model_params" else f"{cost}_mean"
    if cost == "model_params":
        pts = pts.assign(model_params_mean=pts["model_params"], model_params_std=0.0)
        c = "model_params_mean"
    pts = pts[pts[c].notna() & pts[f"{metric}_mean"].notna()]
    if (pts["profile"] != "smoke").any():
        pts = pts[pts["profile"] != "smoke"]
    pts = pts.assign(front=False)
    for _, part in pts.groupby("dataset"):
        pts.loc[part.index, "front"] = pareto_front(part[c], part[f"{metric}_mean"])
    pts.attrs["cost"] = c.removesuffix("_mean")
    return pts.reset_index(drop=True)


def cost_figure(tables: dict, metric: str = "auc", cost: str | None = None):
    """`cost_points` drawn by medlib.viz.benchmark.cost_plot; None when there are none."""
    from medlib.viz.benchmark import cost_plot

    pts = cost_points(tables, metric, cost)
    return cost_plot(pts, metric, pts.attrs["cost"]) if len(pts) else None


def _cell(mean, std, n, digits=3) -> str:
    if mean is None or np.isnan(mean):
        return "—"
    if n > 1:
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def _varying_settings(table) -> list[str]:
    """The parameter names whose value differs between rows of one chapter's table."""
    seen: dict[str, set] = {}
    for s in table["settings"]:
        for k, v in json.loads(s).items():
            seen.setdefault(k, set()).add(json.dumps(v, default=str))
    keys = set(seen)
    for s in table["settings"]:
        keys |= {k for k in seen if k not in json.loads(s)}
    return sorted(k for k in keys if len(seen.get(k, ())) > 1 or any(k not in json.loads(s) for s in table["settings"]))


def display_table(table, chapter: str, with_baselines: bool = True):
    """A chapter's summary as strings, one row per configuration, the published rows after
    each dataset's runs."""
    import pandas as pd

    metrics = table.attrs["metrics"]
    varying = _varying_settings(table)
    rows = []
    for (dataset, size), part in table.groupby(["dataset", "size"], sort=True, dropna=False):
        for _, r in part.iterrows():
            s = json.loads(r["settings"])
            row = {"dataset": dataset or "—", "size": "" if pd.isna(size) else int(size), "model": r["model"] or "—",
                   "settings": ", ".join(f"{k}={s.get(k, 'default')}" for k in varying) or "—",
                   "profile": r["profile"], "device": r["device"], "code": r["code"] + (
                       f" ({r['n_code']} versions pooled)" if r["n_code"] > 1 else ""),
                   "n": int(r["n"]), "seeds": r["seeds"] + (" (repeated)" if r["seed_repeated"] else "")}
            for m in metrics:
                row[m] = _cell(r[f"{m}_mean"], r[f"{m}_std"], r["n"])
            row["run (s)"] = _cell(r["run_seconds_mean"], r["run_seconds_std"], r["n"], 0)
            row["params (M)"] = "—" if pd.isna(r["model_params"]) else f"{r['model_params'] / 1e6:.2f}"
            rows.append(row)
        if with_baselines:
            for name, vals in baselines(chapter, dataset, size, metrics).items():
                rows.append({"dataset": dataset, "size": "", "model": f"paper: {name}", "settings": "", "profile": "",
                             "device": "", "code": "", "n": "", "seeds": "",
                             **{m: f"{vals[m]:.3f}" if m in vals else "" for m in metrics},
                             "run (s)": "", "params (M)": ""})
    return pd.DataFrame(rows)


def _notes(frame, tables, across_code: bool) -> list[str]:
    notes = []
    n_reused = int(frame["reused"].sum()) if len(frame) else 0
    if n_reused:
        notes.append(f"{n_reused} run(s) loaded an earlier run's trained model (reuse=True); they repeat its numbers "
                     "and are left out of the averages.")
    fresh = frame[~frame["reused"]]
    split = fresh.groupby(CONFIG, dropna=False)["code_key"].nunique() if len(fresh) else []
    multi = int((split > 1).sum()) if len(fresh) else 0
    if multi and not across_code:
        notes.append(f"{multi} configuration(s) ran on more than one code version: each version is its own row "
                     "(never averaged silently); `--across-code` pools them and says so.")
    if any(t["seed_repeated"].any() for t in tables.values()):
        notes.append("Some rows repeat a seed (the same run twice): their spread measures run-to-run noise, not seeds.")
    singles = sum(int((t["n"] == 1).sum()) for t in tables.values())
    if singles:
        notes.append(f"{singles} row(s) rest on a single run: a number without ± is one seed, not a mean.")
    if len(frame) and (frame["profile"] == "smoke").any():
        notes.append("`smoke` rows train on tiny subsets for one or two epochs: they show that the code runs; "
                     "their numbers are not results and are not comparable with the paper rows.")
    skipped = sorted(set(frame["chapter"]) - set(tables)) if len(frame) else []
    if skipped:
        why = [f"{c} ({NOT_BENCHMARKS.get(c, 'no numeric metric on this split')})" for c in skipped]
        notes.append(f"Not tabulated: {', '.join(why)}.")
    return notes


def markdown(frame, tables, root, split: str = "test", across_code: bool = False) -> str:
    lines = [f"# Benchmark report: {root}", "",
             f"{len(frame)} run record(s); {split} metrics, mean ± std over seeds (population std) per "
             f"configuration; n = runs averaged; run (s) = `medlib run` wall time; `paper:` rows are published "
             f"results under their own protocols (medlib.baselines cites each).", ""]
    lines += [f"- {n}" for n in _notes(frame, tables, across_code)]
    for chapter, table in tables.items():
        shown = display_table(table, chapter)
        lines += ["", f"## {chapter}", "", "| " + " | ".join(shown.columns) + " |",
                  "|" + "---|" * len(shown.columns)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def html_page(frame, tables, root, split: str = "test", across_code: bool = False) -> str:
    """One self-contained page: the notes, per chapter a bar chart and the table, then accuracy vs cost."""
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px}"
             "th{background:#f2f2f2}tr.paper td{color:#666;font-style:italic}img{max-width:100%}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>medlib benchmark report</title>"
             f"<style>{style}</style></head><body><h1>Benchmark report</h1><p>{html.escape(str(root))}: "
             f"{len(frame)} run record(s); {split} metrics, mean ± std over seeds (population std) per configuration. "
             "Rows in grey italics are published results under their own protocols.</p><ul>"]
    parts += [f"<li>{html.escape(n)}</li>" for n in _notes(frame, tables, across_code)] + ["</ul>"]
    for chapter, table in tables.items():
        shown = display_table(table, chapter)
        parts.append(f"<h2>{html.escape(chapter)}</h2>")
        fig = bars_figure(table, chapter)
        if fig is not None:
            parts.append(f"<img alt='{html.escape(chapter)} bars' src='data:image/png;base64,{_png(fig)}'>")
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
        body = "".join(
            f"<tr{' class=paper' if str(row[2]).startswith('paper:') else ''}>"
            + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
            for row in shown.itertuples(index=False))
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
    fig = cost_figure(tables)
    if fig is not None:
        parts.append("<h2>Accuracy vs cost</h2><img alt='accuracy vs cost' "
                     f"src='data:image/png;base64,{_png(fig)}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(root=None, fmt: str = "md", out=None, split: str = "test", across_code: bool = False):
    """The report as text, and the file written (None when Markdown goes to the screen)."""
    root = paths.runs_dir(root)
    records = load_records(root)
    if not records:
        raise ValueError(f"no run records (results.json) under {root}; run `medlib sweep sweeps/smoke.yaml` "
                         "or `medlib run <chapter>` first")
    frame = runs_frame(records, split)
    tables = summarise(frame, across_code)
    if fmt == "md":
        text = markdown(frame, tables, root, split, across_code)
        path = None if out is None else Path(out)
    elif fmt == "html":
        text = html_page(frame, tables, root, split, across_code)
        path = Path(out) if out else root / "report.html"
    else:
        raise ValueError(f"unknown format {fmt!r}; valid: md, html")
    if path is not None:
        from medlib.io import atomic_write

        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
        path.chmod(0o644)  # a page to share, not a private record
    return text, path


def default_source(runs_dir=None) -> Path:
    """Where chapter 10 reads records: `runs_dir` if given; else the runs folder when it holds a
    run of another chapter; else the suite's committed evidence, bench/results/runs."""
    if runs_dir is not None:
        return Path(runs_dir).expanduser().resolve()
    here = paths.runs_dir()
    if here.is_dir() and any(r["chapter"] != "10_benchmark" for r in load_records(here)):
        return here
    return paths.REPO_ROOT / "bench" / "results" / "runs"


def auc_mann_whitney(y, scores) -> np.ndarray:
    """AUC as the Mann-Whitney statistic, over the last axis: (..., n) scores, (n,) 0/1 labels."""
    from scipy.stats import rankdata

    pos = np.asarray(y).astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    ranks = rankdata(scores, axis=-1)
    return (ranks[..., pos].sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def best_of_k(n_neg: int, n_pos: int, true_auc: float, ks=(1, 2, 5, 10, 20), repeats: int = 200, seed: int = 0):
    """The winner's curse, simulated (chapter 10): k equally good classifiers (binormal scores,
    negatives N(0, 1), positives N(d, 1), AUC = Phi(d / sqrt 2)) on one test set; the best test
    AUC of k, over `repeats` draws. Returns (table, aucs of shape (repeats, max k))."""
    import pandas as pd
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_neg), np.ones(n_pos)]
    d = np.sqrt(2) * norm.ppf(true_auc)
    aucs = auc_mann_whitney(y, rng.standard_normal((repeats, max(ks), y.size)) + d * y)
    best = {k: aucs[:, :k].max(1) for k in ks}
    table = pd.DataFrame({"k tried on test": list(ks),
                          "mean reported AUC": [best[k].mean() for k in ks],
                          "optimism": [best[k].mean() - true_auc for k in ks],
                          "P(reported > truth + 0.01)": [(best[k] > true_auc + 0.01).mean() for k in ks]})
    return table, aucs

"""Print the markdown tables of bench/README.md from bench/results/*.json, and check them.

`results/runs/*.json` are chapter runs' own results.json files, copied unchanged from
`runs/<chapter>/<run-id>/` (named <chapter>_<dataset>_<profile>_<device>[_seedN].json).
The course targets are data (`targets.json`), checked against those records.

    python bench/report.py            # exit 1 if a record cited by README.md or bench/README.md
                                      # is missing or unreadable
    python bench/report.py --strict   # also exit 1 if a target is missed or not measured
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from medlib.report import METRICS

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def _pm(pair, digits=3):
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def time_to_baseline(path: Path) -> str:
    r = json.loads(path.read_text())
    m = r["machine"]
    end = f"{m['loadavg_end'][0]:.1f}" if "loadavg_end" in m else "n/a (still running)"
    lines = [f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['torch_threads']} torch "
             f"thread(s), torch {m['torch']}; load average at start {m['loadavg_start'][0]:.1f}, at end {end}.",
             "",
             "| dataset | seeds | standard: test AUC | test ACC | train wall-time (s) | "
             "v2 ResNet-18 (28) AUC / ACC | best v2 AUC / ACC | meets ResNet-18 (28)? | stretch? |",
             "|---|---|---|---|---|---|---|---|---|"]
    for flag, s in r["summary"].items():
        b, best = s["baseline_resnet18_28"], s["best_v2"]
        lines.append(f"| {flag} | {s['n_seeds']} | {_pm(s['auc'])} | {_pm(s['acc'])} | "
                     f"{_pm(s['fit_wall_seconds'], 0)} | {b['auc']:.3f} / {b['acc']:.3f} | "
                     f"{best['auc']:.3f} / {best['acc']:.3f} | {'yes' if s['meets_baseline'] else '**no**'} | "
                     f"{'yes' if s['meets_stretch'] else 'no'} |")
    extra = [(f, s) for f, s in r["summary"].items() if "mae" in s]
    if extra:
        lines += ["", "| dataset | grade MAE | quadratic-weighted kappa |", "|---|---|---|"]
        lines += [f"| {f} | {_pm(s['mae'])} | {_pm(s['qwk'])} |" for f, s in extra]
    lines += ["", "| dataset | official pipeline + ResNet-18 (28): train images/s | s / epoch (train) | "
              "100 epochs, train only (s) | 100 epochs incl. the protocol's per-epoch evaluation (s) | "
              "standard recipe (s) | speed-up (train only) | speed-up (with eval) |",
              "|---|---|---|---|---|---|---|---|"]
    for flag, o in r["official"].items():
        s = r["summary"].get(flag)
        if not s:
            continue
        lines.append(f"| {flag} | {o['images_per_s']:.1f} | {o['epoch_train_s']:.0f} | "
                     f"{o['protocol_100_epochs_train_s']:,.0f} | {o['protocol_100_epochs_with_eval_s']:,.0f} | "
                     f"{s['fit_wall_seconds'][0]:.0f} | {s['speedup_vs_protocol_train']:.0f}× | "
                     f"{s['speedup_vs_protocol_with_eval']:.0f}× |")
    if "correction" in r:
        lines += ["", f"Note: {r['correction']}."]
    lines += ["", "Per run:", "", "| dataset | seed | epochs | best epoch | wall (s) | images/s | test AUC | test ACC |",
              "|---|---|---|---|---|---|---|---|"]
    for x in r["runs"]:
        lines.append(f"| {x['dataset']} | {x['seed']} | {x['epochs']} | {x['best_epoch']} | "
                     f"{x['fit_wall_seconds']:.0f} | {x['images_per_s']:.0f} | {x['test']['auc']:.3f} | "
                     f"{x['test']['acc']:.3f} |")
    return "\n".join(lines)


def data_pipeline(path: Path) -> str:
    r = json.loads(path.read_text())
    m, med = r["machine"], r["median_seconds_per_epoch"]
    return "\n".join([
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['torch_threads']} torch thread(s); "
        f"load average {m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f}. "
        f"{r['args']['dataset']}, {r['n_train']} training images, batch {r['args']['batch_size']}, "
        f"median of {r['args']['repeats']} epochs each.",
        "",
        "| seconds per epoch | official (medmnist + ToTensor + Normalize + DataLoader) | medlib TensorLoader | speed-up |",
        "|---|---|---|---|",
        f"| data only | {med['official_data']:.3f} | {med['medlib_data']:.3f} | {r['speedup_data_only']:.0f}× |",
        f"| with a SimpleCNN training step | {med['official_train']:.2f} | {med['medlib_train']:.2f} | "
        f"{r['speedup_with_simplecnn_step']:.2f}× |",
    ])


RESULTS_TTB: dict = {}  # results/time_to_baseline.json, read by main()
SHOWN = METRICS  # one home: medlib.report


def recipe_selection(path: Path) -> str:
    r = json.loads(path.read_text())
    lines = [f"Rule: {' '.join(r['rule'].split())}", ""]
    for group, d in r["decision"].items():
        if d.get("status") != "decided":
            lines.append(f"{group}: {d.get('status')}")
            continue
        flags = list(next(iter(d["table"].values()))["per_dataset"])
        lines += [f"**{group} tasks** ({', '.join(flags)}): validation score (AUC + ACC) / 2 at the last epoch, "
                  "mean ± std over 3 seeds", "",
                  "| class weights | label smoothing | budget (images) | " + " | ".join(flags) + " | mean | chosen |",
                  "|---|---|---|" + "---|" * len(flags) + "---|---|"]
        for row in sorted(d["table"].values(), key=lambda t: -t["mean"]):
            c = row["cfg"]
            cells = " | ".join(f"{row['per_dataset'][f][0]:.4f} ± {row['per_dataset'][f][1]:.4f}" for f in flags)
            lines.append(f"| {c['class_weights']} | {c['label_smoothing']} | {c['budget']:,} | {cells} | "
                         f"{row['mean']:.4f} | {'**yes**' if c == d['chosen'] else ''} |")
        lines += ["", f"Flip TTA on the chosen configuration's kept models: validation score "
                      f"{d['tta_gain_mean']:+.4f} ± {d['tta_gain_std']:.4f} -> {'used' if d['tta'] else 'not used'}.", ""]
    return "\n".join(lines)


def seg_selection(path: Path) -> str:
    r = json.loads(path.read_text())
    d = r["decision"]
    metric = d.get("metric", "auc_pooled")
    cols = list(dict.fromkeys((metric, "auc_pooled", "dice_pooled", "dice")))
    cols = [c for c in cols if all(c in t for t in d["table"].values())]
    lines = [f"Rule: {' '.join(r['rule'].split())}", "",
             "| candidate | parameters | " + " | ".join(f"validation {c}" for c in cols) + " | train (s, mean) | chosen |",
             "|---|---|" + "---|" * len(cols) + "---|---|"]
    for name, t in sorted(d["table"].items(), key=lambda kv: -kv[1][metric][0]):
        lines.append(f"| {name} | {t['params']:,} | " + " | ".join(_pm(t[c], 4) for c in cols) +
                     f" | {t['train_seconds']:.0f} | {'**yes**' if name == d.get('chosen') else ''} |")
    m = r["machines"][0]
    runs = [x for x in r["runs"] if "trivial_val_at_0.5" in x]
    if runs:
        lines += ["", f"Trivial baseline on the same validation images: {metric} "
                      f"{runs[0]['trivial_val_at_0.5'][metric]:.4f}."]
    lines += ["", f"n = {next(iter(d['table'].values()))['n']} seeds per candidate; {m['cpu']}, {m['logical_cores']} "
                  f"logical cores, {m['torch_threads']} torch thread per run, two runs side by side. "
                  f"Chosen: {d.get('chosen')} {json.dumps(d.get('recipe'))}."]
    return "\n".join(lines)


def _selection_table(path: Path, metrics: tuple[str, ...], extra: dict | None = None, note: str = "",
                     chosen_extra=None) -> str:
    """A selection's rule, one row per candidate (per dataset: mean ± std of each validation metric;
    the score; `extra` columns {header: f(row)}; training seconds) and the decision."""
    names = {"auc": "AUC", "acc": "ACC", "bacc": "bal. acc"}
    r = json.loads(path.read_text())
    d = r["decision"]
    if "table" not in d:
        return f"status: {d.get('status')}"
    extra = extra or {}
    flags = list(next(iter(d["table"].values()))["per_dataset"])
    lines = [f"Rule: {' '.join(r['rule'].split())}", "",
             "| candidate | " + " | ".join(f"{f}: val {' / '.join(names[k] for k in metrics)}" for f in flags) +
             " | score | " + "".join(f"{h} | " for h in extra) + "train (s, mean) | chosen |",
             "|---|" + "---|" * len(flags) + "---|" * len(extra) + "---|---|---|"]
    for name, t in sorted(d["table"].items(), key=lambda kv: -kv[1]["score"]):
        cells = " | ".join(" / ".join(_pm(t["per_dataset"][f][k]) for k in metrics) for f in flags)
        lines.append(f"| {name} | {cells} | {t['score']:.4f} | " + "".join(f"{fn(t)} | " for fn in extra.values()) +
                     f"{t['train_seconds']:.0f} | {'**yes**' if name == d.get('chosen') else ''} |")
    m = r["machine"]
    more = chosen_extra(d) if chosen_extra else ""
    lines += ["", f"2 seeds per candidate and dataset; {m['cpu']}, {m['logical_cores']} logical cores, "
                  f"{m['torch_threads']} torch threads{note}. Chosen: {d.get('chosen')} {json.dumps(d.get('recipe'))}"
                  f"{more} ({d.get('status')})."]
    return "\n".join(lines)


def volume_selection(path: Path) -> str:
    return _selection_table(path, ("auc", "acc", "bacc"))


def vit_selection(path: Path) -> str:
    return _selection_table(path, ("auc", "acc"),
                            {"score with flip TTA": lambda t: f"{t['score_tta']:.4f}",
                             "MACs / image (M)": lambda t: f"{t.get('macs', 0) / 1e6:.1f}"},
                            note=" (train seconds were measured while other work shared the CPU)",
                            chosen_extra=lambda d: f", flip TTA {d.get('tta')}")


def _mean_std(vals: list[float], digits: int = 3) -> str:
    if not vals:
        return "—"
    mean = sum(vals) / len(vals)
    return f"{mean:.{digits}f} ± {(sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5:.{digits}f}"


def rnn_tables(records: dict[str, dict]) -> str:
    """Chapter 02 over its recorded seeds: test rows (ours and the baselines, each mean ± std)
    beside MedMNIST v2's 3D table, then the ablations on validation."""
    sys.path.insert(0, str(BENCH.parent))
    from medlib.baselines import medmnist_baselines

    out = []
    runs = [r for r in records.values() if r.get("chapter") == "02_rnn" and r.get("profile") == "standard"
            and not r.get("reused")]
    for (flag, size) in sorted({(r["dataset"], r["params"].get("size", 28)) for r in runs}):
        rs = [r for r in runs if (r["dataset"], r["params"].get("size", 28)) == (flag, size)]
        seeds = sorted(r.get("seed") for r in rs)
        out += [f"**{flag}, {size}³** — test, mean ± std over seeds {seeds} (`standard`, CPU)", "",
                "| model | AUC | ACC | balanced acc | sensitivity | specificity | parameters | train (s) |",
                "|---|---|---|---|---|---|---|---|"]
        if size == 28:
            for name, v in medmnist_baselines(flag).items():
                out.append(f"| MedMNIST v2: {name} | {v['auc']:.3f} | {v['acc']:.3f} | | | | | |")
        triv = [r["trivial_baseline"] for r in rs if r.get("trivial_baseline")]
        out.append(f"| trivial: training class prior | {_mean_std([t['auc'] for t in triv])} | "
                   f"{_mean_std([t['acc'] for t in triv])} | 0.500 | | | 0 | |")
        names = list(dict.fromkeys(k for r in rs for k in (r.get("others") or {})))
        for name in names:
            ms = [r["others"][name] for r in rs if name in (r.get("others") or {})]
            tr = [r["validation"]["train s"].get(name.removeprefix("ours: ").rsplit(" (", 1)[0]) for r in rs]
            out.append(f"| {name} | " + " | ".join(_mean_std([m[k] for m in ms]) for k in
                                                    ("auc", "acc", "bacc", "sens", "spec")) +
                       f" | {ms[0]['model_params']:,} | {_mean_std([t for t in tr if t is not None], 0)} |")
        test = [r["metrics"]["test"] for r in rs]
        out.append(f"| **ours: slice reader ({rs[0].get('cell', 'gru')})** | " + " | ".join(
            _mean_std([t[k] for t in test]) for k in ("auc", "acc", "balanced_acc", "sensitivity", "specificity")) +
            f" | {rs[0]['model_params']:,} | {_mean_std([r['train_seconds'] for r in rs], 0)} |")
        thr = [r["at_validation_threshold"] for r in rs if r.get("at_validation_threshold")]
        if thr:
            out += ["", "Slice reader at the threshold chosen on validation (max. balanced accuracy): " + ", ".join(
                f"{k} {_mean_std([t[k] for t in thr])}" for k in ("acc", "balanced_acc", "sensitivity", "specificity"))
                + f"; run time `medlib run` {_mean_std([r['run_seconds'] for r in rs if 'run_seconds' in r], 0)} s."]
        abl = [r["ablations"] for r in rs if r.get("ablations")]
        if abl:
            out += ["", "Ablations of the slice reader — **validation**, mean ± std over the same seeds:", "",
                    "| variant | val AUC | val ACC | val balanced acc | train (s) |", "|---|---|---|---|---|"]
            for variant in abl[0]["val AUC"]:
                cols = [_mean_std([a[c][variant] for a in abl if variant in a[c]], 0 if c == "train s" else 3)
                        for c in ("val AUC", "val ACC", "val balanced acc", "train s")]
                out.append(f"| {variant} | " + " | ".join(cols) + " |")
        out.append("")
    return "\n".join(out) if out else "no chapter 02 records"


def autoencoder_tables(records: dict[str, dict]) -> str:
    """Chapter 03 over its recorded seeds: the denoising table per noise kind (every method at
    every level, PSNR / SSIM mean ± std, time per image), the anomaly table (each score's AUC,
    the supervised ceiling) and the few-label table."""
    runs = [r for r in records.values() if r.get("chapter") == "03_autoencoders" and r.get("profile") == "standard"
            and not r.get("reused")]
    out, shown = [], set()  # the anomaly and few-label tables do not depend on the noise: once per dataset
    for flag, noise in sorted({(r["dataset"], r.get("noise")) for r in runs}, key=lambda k: (k[0], k[1] != "gaussian", k)):
        rs = [r for r in runs if (r["dataset"], r.get("noise")) == (flag, noise)]
        seeds = sorted(r.get("seed") for r in rs)
        rows = [row for r in rs for row in r.get("denoising", [])]
        levels = list(dict.fromkeys(row["level"] for row in rows))
        methods = list(dict.fromkeys(row["method"] for row in rows))
        out += [f"**{flag}, {noise} noise** — {rs[0].get('n_denoise')} test images, PSNR (dB) / SSIM, mean ± std over "
                f"seeds {seeds} (`standard`, CPU); time per image at the middle level", "",
                "| method | " + " | ".join(levels) + " | ms / image |", "|---|" + "---|" * (len(levels) + 1)]
        for m in methods:
            cells = []
            for lv in levels:
                sel = [row for row in rows if row["method"] == m and row["level"] == lv]
                cells.append(f"{_mean_std([x['psnr'] for x in sel], 2)} / {_mean_std([x['ssim'] for x in sel], 3)}")
            ms = [row["ms / image"] for row in rows if row["method"] == m and row["level"] == levels[len(levels) // 2]]
            name = f"**{m}**" if m.startswith("learned") else m
            out.append(f"| {name} | " + " | ".join(cells) + f" | {_mean_std(ms, 1)} |")
        test = [r["metrics"]["test"] for r in rs]
        out += ["", f"Learned − BM3D at the middle level: PSNR {_mean_std([t['denoise_gain_psnr'] for t in test], 2)} dB, "
                f"SSIM {_mean_std([t.get('denoise_gain_ssim', t['denoise_ssim'] - t['bm3d_ssim']) for t in test], 3)}; "
                f"`medlib run` {_mean_std([r['run_seconds'] for r in rs if 'run_seconds' in r], 0)} s.", ""]
        an = [r["anomaly"] for r in rs if r.get("anomaly")] if flag not in shown else []
        if an:
            out += [f"Anomaly detection ({flag}, trained on normal images only; the whole test split; the same in "
                    f"every noise kind's runs), mean ± std over "
                    f"seeds {seeds}; the headline score (fixed, never swapped after a run): {rs[0].get('anomaly_headline')}", "",
                    "| score | AUC | 95% CI (seed " + str(rs[0].get("seed")) + ") | sensitivity | specificity |",
                    "|---|---|---|---|---|"]
            for name in an[0]:
                vals = [a[name] for a in an if name in a]
                ci = (f"{vals[0]['auc_lo']:.3f}–{vals[0]['auc_hi']:.3f}" if vals[0].get("auc_lo") is not None
                      and vals[0]["auc_lo"] == vals[0]["auc_lo"] else "")
                sens = _mean_std([v["sensitivity"] for v in vals if v.get("sensitivity") is not None
                                  and v["sensitivity"] == v["sensitivity"]])
                spec = _mean_std([v["specificity"] for v in vals if v.get("specificity") is not None
                                  and v["specificity"] == v["specificity"]])
                out.append(f"| {name} | {_mean_std([v['auc'] for v in vals])} | {ci} | {sens} | {spec} |")
            out.append("")
        few = [r["few_labels"] for r in rs if r.get("few_labels")] if flag not in shown else []
        shown.add(flag)
        if few:
            cols = list(next(iter(few[0].values())))
            out += [f"Few labels ({flag}): test AUC, mean ± std over seeds {seeds}", "",
                    "| labels | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
            for frac in few[0]:
                out.append(f"| {frac} | " + " | ".join(_mean_std([f[frac][c] for f in few if frac in f]) for c in cols) + " |")
            out.append("")
    return "\n".join(out) if out else "no chapter 03 records"


def _stats(vals: list[float]) -> dict:
    mean = sum(vals) / len(vals)
    return {"mean": mean, "std": (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5, "n": len(vals)}


def vit_summary(records: dict[str, dict]) -> dict:
    """Chapter 07 over its recorded seeds, per dataset: the test metrics of the ViT and the CNN,
    the data-hunger curve (test AUC per training fraction and model), the ingredient ablation
    and the patch study (validation), each as mean, std and the number of seeds."""
    runs = [r for r in records.values() if r.get("chapter") == "07_vit" and r.get("profile") == "standard"
            and not r.get("reused") and r.get("hunger")]
    out = {}
    for flag in sorted({r["dataset"] for r in runs}):
        rs = sorted((r for r in runs if r["dataset"] == flag), key=lambda r: r.get("seed", 0))
        keys = list(rs[0]["hunger"])
        hunger = {k: {m: _stats([r["hunger"][k][m] for r in rs if k in r["hunger"]]) for m in ("auc", "acc", "val_auc")}
                  | {"n_train": rs[0]["hunger"][k]["n_train"]} for k in keys}
        ablation = {k: {m: _stats([r["ablation"][k][m] for r in rs if k in r.get("ablation", {})]) for m in ("val AUC", "val ACC")}
                    for k in rs[0].get("ablation", {})}
        patches = {k: {m: _stats([r["patch_study"][k][m] for r in rs if k in r.get("patch_study", {})])
                       for m in ("val AUC", "train s", "train images/s", "MACs / image (M)", "tokens T", "parameters")}
                   for k in rs[0].get("patch_study", {})}
        out[flag] = {
            "seeds": [r.get("seed") for r in rs], "records": [n for n, r in records.items() if r in rs],
            "vit": {m: _stats([r["metrics"]["test"][m] for r in rs]) for m in ("auc", "acc")}
            | {"params": rs[0]["model_params"], "macs": rs[0]["macs"], "train_seconds": _stats([r["train_seconds"] for r in rs]),
               "config": rs[0].get("vit_config")},
            "cnn": {m: _stats([r["cnn"]["metrics"]["test"][m] for r in rs]) for m in ("auc", "acc")}
            | {"params": rs[0]["cnn"]["model_params"], "macs": rs[0]["cnn"]["macs"],
               "train_seconds": _stats([r["cnn"]["train_seconds"] for r in rs])},
            "run_seconds": _stats([r["run_seconds"] for r in rs if "run_seconds" in r]) if any("run_seconds" in r for r in rs) else None,
            "hunger": hunger, "ablation": ablation, "patches": patches}
    return out


def _ms(s: dict, digits: int = 3) -> str:
    """mean ± std, or the value alone for a single run."""
    return f"{s['mean']:.{digits}f}" if s.get("n", 2) == 1 else f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _over(seeds: list) -> str:
    return f"one run (seed {seeds[0]}), indicative" if len(seeds) == 1 else f"mean ± std over seeds {seeds}"


def vit_tables(records: dict[str, dict]) -> str:
    """Chapter 07: the ViT and CNN beside MedMNIST v2 and MedMNIST+, the data-hunger table, the
    ablation and the patch study, mean ± std over the recorded seeds."""
    sys.path.insert(0, str(BENCH.parent))
    from medlib.baselines import medmnist_baselines, medmnist_plus_baselines

    out = []
    for flag, v in sorted(vit_summary(records).items(), key=lambda kv: -len(kv[1]["seeds"])):  # 3-seed sets first
        out += [f"**{flag}** — test, {_over(v['seeds'])} (`standard`, CPU; `medlib run` "
                f"{_ms(v['run_seconds'], 0) if v['run_seconds'] else '—'} s)", "",
                "| model | AUC | ACC | parameters | MACs / image | train (s) |", "|---|---|---|---|---|---|"]
        for name in ("ResNet-18 (28)", "ResNet-50 (28)"):
            b = medmnist_baselines(flag).get(name) if flag in ("pneumoniamnist", "breastmnist", "retinamnist") else None
            if b:
                out.append(f"| MedMNIST v2: {name} | {b['auc']:.3f} | {b['acc']:.3f} | {'11.2 M' if '18' in name else '23.5 M'} | | |")
        for name, b in medmnist_plus_baselines(flag).items():
            out.append(f"| {name} | {b['auc']:.3f} | {b['acc']:.3f} | | | |")
        for label, key in (("CNN: chapter 01's CompactResNet, same epochs", "cnn"), ("**ours: ViT from scratch**", "vit")):
            m = v[key]
            out.append(f"| {label} | {_ms(m['auc'])} | {_ms(m['acc'])} | {m['params'] / 1e6:.2f} M | {m['macs'] / 1e6:.1f} M | "
                       f"{_ms(m['train_seconds'], 0)} |")
        fr = sorted({float(k.split("@")[1]) for k in v["hunger"]})
        out += ["", f"Data hunger ({flag}): test AUC by share of the training split, {_over(v['seeds'])}", "",
                "| share (images) | ViT | CNN | ViT − CNN (mean) |", "|---|---|---|---|"]
        for f in fr:
            a, c = v["hunger"][f"ViT@{f:g}"], v["hunger"][f"CNN@{f:g}"]
            out.append(f"| {f:g} ({a['n_train']}) | {_ms(a['auc'])} | {_ms(c['auc'])} | {a['auc']['mean'] - c['auc']['mean']:+.3f} |")
        if v["ablation"]:
            full = v["ablation"].get("full recipe", {}).get("val AUC", {}).get("mean")
            out += ["", f"Ingredients left out ({flag}, ViT on the smallest share, **validation**), "
                    f"{_over(v['seeds'])}", "", "| variant | val AUC | val ACC | AUC change (mean) |", "|---|---|---|---|"]
            for k, a in v["ablation"].items():
                change = "" if full is None else f"{a['val AUC']['mean'] - full:+.3f}"
                out.append(f"| {k} | {_ms(a['val AUC'])} | {_ms(a['val ACC'])} | {change} |")
        if v["patches"]:
            out += ["", f"Patch size ({flag}, ViT on the smallest share, **validation**), {_over(v['seeds'])}", "",
                    "| patch | tokens | parameters | MACs / image (M) | train images/s | train (s) | val AUC |",
                    "|---|---|---|---|---|---|---|"]
            for k, a in v["patches"].items():
                out.append(f"| {k} | {a['tokens T']['mean']:.0f} | {a['parameters']['mean']:,.0f} | "
                           f"{a['MACs / image (M)']['mean']:.1f} | {_ms(a['train images/s'], 0)} | {_ms(a['train s'], 1)} | "
                           f"{_ms(a['val AUC'])} |")
        out.append("")
    return "\n".join(out) if out else "no chapter 07 records"


MAIN_MODEL = {"03_autoencoders": "denoiser", "07_vit": "vit"}  # the label of a chapter's headline model, where not `model`


XAI_COLUMNS = {"randomisation_spearman": "model-rand. ρ ↓", "data_randomisation_spearman": "data-rand. ρ ↓",
               "deletion_auc": "deletion AUC ↓", "insertion_auc": "insertion AUC ↑", "road_morf": "ROAD MoRF ↓",
               "pointing": "pointing ↑", "energy": "energy in marker ↑"}


def xai_tables(records: dict[str, dict]) -> str:
    """Chapter 09's ranking per (dataset, model, profile): for each method and criterion the mean
    over seeds ± their std, and in brackets the mean of the runs' 95% bootstrap intervals over
    test images; then a rank per criterion from the seed means (sanity: |model-randomisation ρ|,
    faithfulness: insertion - deletion, localisation: pointing) and the mean rank."""
    from medlib.xai import NAMES

    groups: dict[tuple, list[dict]] = {}
    for r in records.values():
        if r.get("chapter") == "09_xai" and not r.get("reused") and r.get("profile") != "smoke":  # smoke: tests, not results
            groups.setdefault((r["dataset"], r.get("model"), r["profile"]), []).append(r)
    out = []
    for (dataset, model, profile), rs in sorted(groups.items()):
        methods = rs[0].get("methods", [])
        head = "| method | " + " | ".join(XAI_COLUMNS.values()) + " | rank: sanity | rank: faithfulness | rank: localisation | mean rank |"
        lines = [f"**{dataset}, {model}, {profile}** — {len(rs)} run(s), seeds {sorted(r.get('seed') for r in rs)}; "
                 f"{rs[0].get('n_faith')} test images for faithfulness, {rs[0].get('n_local')} (marked) for localisation, "
                 f"{rs[0].get('n_sanity')} for the sanity checks", "", head, "|" + "---|" * (len(XAI_COLUMNS) + 5)]
        mean = {}
        for k in methods:
            for metric in XAI_COLUMNS:
                vals = [r["metrics"]["test"][f"{metric}_{k}"] for r in rs]
                cis = [r.get("xai_ci", {}).get(f"{metric}_{k}", [float("nan")] * 2) for r in rs]
                mean[(metric, k)] = (_stats(vals), sum(c[0] for c in cis) / len(cis), sum(c[1] for c in cis) / len(cis))
        crit = {"sanity": {k: abs(mean[("randomisation_spearman", k)][0]["mean"]) for k in methods},
                "faithfulness": {k: -(mean[("insertion_auc", k)][0]["mean"] - mean[("deletion_auc", k)][0]["mean"])
                                 for k in methods},
                "localisation": {k: -mean[("pointing", k)][0]["mean"] for k in methods}}
        ranks = {c: {k: 1 + sum(v < vals[k] for v in vals.values()) for k in methods} for c, vals in crit.items()}
        rows = []
        for k in methods:
            cells = [f"{_ms(mean[(m, k)][0])} [{mean[(m, k)][1]:.3f}, {mean[(m, k)][2]:.3f}]" for m in XAI_COLUMNS]
            mr = sum(ranks[c][k] for c in ranks) / len(ranks)
            rows.append((mr, f"| {NAMES.get(k, k)} | " + " | ".join(cells) + " | " +
                         " | ".join(str(ranks[c][k]) for c in ranks) + f" | {mr:.2f} |"))
        lines += [row for _, row in sorted(rows)]
        out.append("\n".join(lines))
    return "\n\n".join(out) or "(no chapter 09 records)"


def seeds_reach_the_model(records: dict[str, dict]) -> str:
    """The chapter's model of each run (`MAIN_MODEL`, else label `model`, else the first `zoo:`
    model, else the first model built): its label, seed and initial-weight checksum."""
    lines = ["| record | seed | models built | the chapter's model | its seed | its initial-weight checksum |",
             "|---|---|---|---|---|---|"]
    for n, r in sorted(records.items()):
        if r.get("init"):
            init = r["init"]
            label = MAIN_MODEL.get(r.get("chapter"))
            if label not in init:
                label = "model" if "model" in init else next((k for k in init if k.startswith("zoo:")), next(iter(init)))
            e = init[label]
            lines.append(f"| {n} | {r.get('seed')} | {len(r['init'])} | `{label}` | {e.get('seed')} | `{e.get('checksum')}` |")
    return "\n".join(lines) if len(lines) > 2 else ""


def seg_speed(path: Path) -> str:
    r = json.loads(path.read_text())
    m, res = r["machine"], r["results"]
    ts, sw, mt = res["train_step"], res["sliding_window"], res["metrics_20_drive_masks"]
    return "\n".join([
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['torch_threads']} torch thread(s); "
        f"load average {m['loadavg_start'][0]:.1f} -> {r['loadavg_end'][0]:.1f}. Medians of "
        f"{r['args']['repeats']} alternating repeats.",
        "",
        "| operation | medlib (s) | MONAI (s) | medlib / MONAI |",
        "|---|---|---|---|",
        f"| U-Net training step, batch {r['args']['batch']} of 96×96 (medlib {ts['params']['medlib']:,} / "
        f"MONAI {ts['params']['monai']:,} parameters) | {ts['medlib_s']:.3f} | {ts['monai_s']:.3f} | "
        f"{ts['ratio_medlib_over_monai']:.2f} |",
        f"| sliding-window inference, one DRIVE image | {sw['medlib_s']:.3f} | {sw['monai_s']:.3f} | "
        f"{sw['ratio_medlib_over_monai']:.2f} |",
        f"| Dice of 20 DRIVE masks | {mt['dice_medlib_s']:.3f} | {mt['dice_monai_s']:.3f} | "
        f"{mt['dice_ratio_medlib_over_monai']:.2f} |",
        f"| HD95 of 20 DRIVE masks | {mt['hd95_medlib_s']:.3f} | {mt['hd95_monai_s']:.3f} | "
        f"{mt['hd95_ratio_medlib_over_monai']:.2f} |",
    ])


def sweep_smoke(path: Path) -> str:
    r = json.loads(path.read_text())
    m = r["machine"]
    lines = [f"Machine: {m['cpu']}, {m['logical_cores']} logical cores; load average {m['loadavg_start'][0]:.1f} -> "
             f"{m.get('loadavg_end', [float('nan')])[0]:.1f}. Grid `{r['grid']}`, each mode into a fresh folder.", "",
             "| mode | threads per run | wall (s) | speed-up vs 1 worker | runs ok / failed | sum of run times (s) | "
             "slowest run (s) |", "|---|---|---|---|---|---|---|"]
    for name, x in r["modes"].items():
        secs = [v for v in x["run_seconds"].values() if v is not None]
        lines.append(f"| {name} | {x.get('threads_per_run') or '1 (one task slot per worker)'} | {x['wall_seconds']:.0f} | "
                     f"{r['speedup_vs_1_worker'][name]:.2f}× | {x['counts']['ok']} / {x['counts']['failed']} | "
                     f"{sum(secs):.0f} | {max(secs):.0f} |")
    diffs = ", ".join(f"{k}: {'—' if v is None else f'{v:.2g}'}" for k, v in r["max_abs_metric_difference"].items())
    lines += ["", f"Same set of finished runs (run ids) in every mode: {'yes' if r['same_runs'] else '**no**'}. "
              f"Largest difference of a headline metric between modes: {diffs}."]
    return "\n".join(lines)


def _value(record: dict, metric: str):
    test = (record.get("metrics") or {}).get("test") or {}
    return test.get(metric, record.get(metric))


def _threshold(target: dict) -> tuple[str, float]:
    if "min_from" in target:
        sys.path.insert(0, str(BENCH.parent))
        from medlib.baselines import medmnist_baselines

        row = target["min_from"].removeprefix("MedMNIST v2: ")
        return ">=", medmnist_baselines(target["dataset"])[row][target.get("baseline_metric", target["metric"])]
    return (">=", target["min"]) if "min" in target else ("<=", target["max"])


def check_targets(records: dict[str, dict], targets: list[dict]) -> tuple[str, list[str]]:
    """One row per target: the matching records, their mean, and whether it meets the target."""
    lines = ["| chapter | dataset | profile | metric | target | source | records | value (mean ± std) | met? |",
             "|---|---|---|---|---|---|---|---|---|"]
    problems = []
    for t in targets:
        op, bound = _threshold(t)
        if t.get("source") == "time_to_baseline":  # the 3-seed benchmark: one record per seed
            ttb = RESULTS_TTB.get("runs", [])
            records_t = {f"time_to_baseline seed {r['seed']}": {"chapter": "01_cnn", "dataset": r["dataset"],
                                                                "profile": "standard", "metrics": {"test": r["test"]}}
                         for r in ttb if r["dataset"] == t["dataset"]}
        else:
            records_t = records
        match = [(name, r) for name, r in records_t.items()
                 if not r.get("reused")  # a run that loaded a trained model repeats its metrics and skips its cost
                 and (r.get("chapter"), r.get("dataset"), r.get("profile")) == (t["chapter"], t["dataset"], t["profile"])
                 and all(str(r.get(k, "")).split(":")[0] == v for k, v in (t.get("where") or {}).items())
                 and _value(r, t["metric"]) is not None]
        vals = [float(_value(r, t["metric"])) for _, r in match]
        label = f"{op} {bound:g}" + (f" ({t['min_from']})" if "min_from" in t else "")
        source = "time_to_baseline" if t.get("source") == "time_to_baseline" else "runs/"
        if not vals:
            lines.append(f"| {t['chapter']} | {t['dataset']} | {t['profile']} | {t['metric']} | {label} | {source} | 0 | "
                         "not measured | — |")
            problems.append(f"{t['chapter']}/{t['dataset']}/{t['profile']} {t['metric']}: not measured")
            continue
        mean = sum(vals) / len(vals)
        std = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
        ok = mean >= bound if op == ">=" else mean <= bound
        lines.append(f"| {t['chapter']} | {t['dataset']} | {t['profile']} | {t['metric']} | {label} | {source} | "
                     f"{len(vals)} | {mean:.4g} ± {std:.2g} | {'yes' if ok else '**no**'} |")
        if not ok:
            problems.append(f"{t['chapter']}/{t['dataset']}/{t['profile']} {t['metric']}: {mean:.4g} misses {label}")
    return "\n".join(lines), problems


def chapter_runs(records: dict[str, dict]) -> str:
    lines = ["| file | chapter | dataset | profile | seed | device | model (parameters) | train (s) | notebook (s) | "
             "`medlib run` (s) | test metrics |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in sorted(records.items()):
        test = r["metrics"]["test"]
        shown = ", ".join(f"{k} {test[k]:.3f}" for k in SHOWN.get(r["chapter"], ()) if test.get(k) is not None)
        nb_s, train_s, params = r.get("notebook_seconds"), r.get("train_seconds"), r.get("model_params")
        run_s = r.get("run_seconds")
        lines.append(
            f"| {name} | {r['chapter']} | {r['dataset']} | {r['profile']} | {r.get('seed')} | "
            f"{r.get('device_name', r['device'])} | {r['model'] or '—'} ({'—' if params is None else f'{params / 1e6:.2f} M'}) | "
            f"{'—' if train_s is None else f'{train_s:.0f}'} | "
            f"{'—' if nb_s is None else f'{nb_s:.0f}'} | {'—' if run_s is None else f'{run_s:.0f}'} | {shown} |")
    return "\n".join(lines)


CITED = re.compile(r"(?:bench/)?results/((?:runs/)?[A-Za-z0-9_.\-]+\.json)")


def cited_records(root: Path) -> dict[str, list[str]]:
    """Every `results/....json` that README.md or bench/README.md names: {file: [cited in]}."""
    out: dict[str, list[str]] = {}
    for doc in (root.parent / "README.md", root / "README.md"):
        if doc.exists():
            for m in CITED.finditer(doc.read_text()):
                out.setdefault(m.group(1), []).append(doc.name if doc.parent == root.parent else "bench/README.md")
    return out


def main(argv=None, root: Path = BENCH) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strict", action="store_true", help="also fail on a missed or unmeasured target")
    args = ap.parse_args(argv)
    results = root / "results"
    errors = []
    for rel, docs in sorted(cited_records(root).items()):
        if not (results / rel).exists():
            errors.append(f"missing record results/{rel} (cited in {', '.join(sorted(set(docs)))})")
    for name, fn in (("recipe_selection", recipe_selection), ("drive_selection", seg_selection),
                     ("dsb2018_96_selection", seg_selection), ("volume_selection", volume_selection),
                     ("time_to_baseline", time_to_baseline), ("data_pipeline", data_pipeline),
                     ("seg_speed", seg_speed), ("vit_selection", vit_selection), ("sweep_smoke", sweep_smoke)):
        p = results / f"{name}.json"
        if p.exists():
            print(f"## {name}\n\n{fn(p)}\n")
    records = {}
    for p in sorted((results / "runs").glob("*.json")):
        try:
            records[p.name] = json.loads(p.read_text())
            records[p.name]["metrics"]["test"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            errors.append(f"unreadable record {p.relative_to(root)}: {type(e).__name__}: {e}")
            records.pop(p.name, None)
    if records:
        print(f"## chapter runs\n\n{chapter_runs(records)}\n")
        print(f"## initial weights (checksums recorded by run.build)\n\n{seeds_reach_the_model(records)}\n")
        print(f"## chapter 02: slice reader vs baselines and MedMNIST v2\n\n{rnn_tables(records)}\n")
        print(f"## chapter 03: denoising, anomaly detection, few labels\n\n{autoencoder_tables(records)}\n")
        print(f"## chapter 07: ViT vs CNN, data hunger, ingredients, patch size\n\n{vit_tables(records)}\n")
        print(f"## chapter 09: explanation methods ranked (mean ± std over seeds [95% CI over test images])\n\n"
              f"{xai_tables(records)}\n")
    targets = json.loads((root / "targets.json").read_text())["targets"]
    global RESULTS_TTB
    ttb = results / "time_to_baseline.json"
    RESULTS_TTB = json.loads(ttb.read_text()) if ttb.exists() else {}
    table, problems = check_targets(records, targets)
    print(f"## targets (targets.json)\n\n{table}\n")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if args.strict:
        for p in problems:
            print(f"target: {p}", file=sys.stderr)
    return 1 if errors or (args.strict and problems) else 0


if __name__ == "__main__":
    sys.exit(main())

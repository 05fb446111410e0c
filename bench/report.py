"""Print the markdown tables of bench/README.md from bench/results/*.json.

`results/runs/*.json` are chapter runs' own results.json files, copied unchanged from
`runs/<chapter>/<run-id>/` (named <chapter>_<dataset>_<profile>_<device>.json).

    python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


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


# Course targets from the issues, checked against recorded chapter runs: (metric, minimum).
TARGETS = {
    ("05_unet", "drive", "standard"): [("auc", 0.975), ("f1", 0.80)],
    ("05_unet", "drive", "paper"): [("auc", 0.98), ("f1", 0.82)],
    ("05_unet", "dsb2018_96", "standard"): [("dice", 0.88)],
}
SHOWN = {"01_cnn": ("auc", "acc"), "05_unet": ("dice", "f1", "auc", "sens", "spec", "hd95")}


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


def chapter_runs(folder: Path) -> str:
    lines = ["| file | chapter | dataset | profile | device | model (parameters) | train (s) | notebook (s) | "
             "test metrics | target | met? |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(folder.glob("*.json")):
        r = json.loads(p.read_text())
        test = r["metrics"]["test"]
        shown = ", ".join(f"{k} {test[k]:.3f}" for k in SHOWN.get(r["chapter"], ()) if k in test)
        target = TARGETS.get((r["chapter"], r["dataset"], r["profile"]), [])
        met = "—" if not target else ("yes" if all(test[k] >= v for k, v in target) else "**no**")
        nb_s = r.get("notebook_seconds")
        lines.append(
            f"| {p.name} | {r['chapter']} | {r['dataset']} | {r['profile']} | {r.get('device_name', r['device'])} | "
            f"{r['model']} ({r['model_params'] / 1e6:.2f} M) | {r['train_seconds']:.0f} | "
            f"{'—' if nb_s is None else f'{nb_s:.0f}'} | {shown} | "
            f"{', '.join(f'{k} ≥ {v}' for k, v in target) or '—'} | {met} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for name, fn in (("time_to_baseline", time_to_baseline), ("data_pipeline", data_pipeline),
                     ("seg_speed", seg_speed)):
        p = RESULTS / f"{name}.json"
        if p.exists():
            print(f"## {name}\n\n{fn(p)}\n")
    if (RESULTS / "runs").is_dir():
        print(f"## chapter runs\n\n{chapter_runs(RESULTS / 'runs')}\n")

"""Chapter 06's recipes: the sources of pretraining, the SimCLR and fine-tuning budgets, and the
encoder cache (pretrained encoders saved with their provenance and reused when asked).

- Supervised pretraining: chapter 01's CompactResNet with its `standard` recipe on a larger
  MedMNIST dataset (by default the 2D file present with the most training images, target aside).
- SimCLR: the same network, pretrained on the unlabelled training images of every 2D file
  present at the size (the target's included; converted to the target's channels).
- Fine-tuning: chapter 01's `standard` recipe with its own image budget (set for the chapter's
  time; up to 100 epochs on small label subsets, where from scratch gets chapter 01's 80) and a
  learning rate per strategy chosen on validation (bench/README.md, chapter 06; `freeze_blocks`
  and the layer-wise decay were not tuned); from scratch: chapter 01's recipe unchanged, the
  reference.

Explained in chapter 06.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from medlib import env, paths, transfer
from medlib.data import registry
from medlib.data.medmnist import Split, available, md5sum
from medlib.recipes.classification import recipe, standard_epochs
from medlib.train import History

CHAPTER = "06_transfer_learning"
CURVE_FRACTIONS = (0.01, 0.05, 0.1, 0.25, 1.0)

# Per profile: fine-tuning epochs (`epochs`; None = the `FINETUNE` image budget), SimCLR's epochs,
# batch and temperature, the supervised source's epochs (None = chapter 01's image budget) and
# training images (None = all), the pool's images (None = all), images in the feature plots
# and probes. `standard` keeps the chapter's default path near 5 minutes on 2 CPU cores.
CHAPTER_BUDGETS = {
    "smoke": {"epochs": 2, "simclr_epochs": 1, "simclr_batch": 128, "pool_max": 512, "source_epochs": 1,
              "source_max": 512, "scratch_epochs": 2, "n_embed": 128, "probe_max": 256},
    "standard": {"epochs": None, "simclr_epochs": 6, "simclr_batch": 256, "pool_max": None, "source_epochs": 5,
                 "source_max": None, "scratch_epochs": None, "n_embed": 600, "probe_max": 2000},
    "paper": {"epochs": 60, "simclr_epochs": 100, "simclr_batch": 512, "pool_max": None, "source_epochs": 100,
              "source_max": None, "scratch_epochs": None, "n_embed": 2000, "probe_max": None},
}
SIMCLR = {"temperature": 0.5, "lr": 2e-3, "weight_decay": 1e-4, "hidden": 128, "out_dim": 64}
# Fine-tuning: the images seen (epochs = images / labelled images, clipped to [20, 100]: about 30
# epochs on BreastMNIST's 546; set for time), the learning rate per strategy (chosen on
# validation, bench/README.md), the blocks `freeze_early` freezes and the layer-wise decay (not tuned).
FINETUNE = {"images": 16_000, "lr": {"linear_probe": 1e-1, "freeze_early": 1e-3, "full": 1e-3, "layerwise": 2e-3},
            "freeze_blocks": 2, "decay": 0.5}


def sources(target: str, size: int, root=None) -> list[str]:
    """The 2D MedMNIST files present at `size` other than `target`, most training images first."""
    flags = [f for f, s, _, status in available(root) if s == size and status == "verified"
             and registry.info(f).dim == 2 and f != target]
    return sorted(flags, key=lambda f: -registry.info(f).n_samples["train"])


def pick_source(source: str, target: str, size: int, root=None) -> str:
    """`source` itself, or for "auto" the present 2D file with the most training images."""
    present = sources(target, size, root)
    if source == "auto":
        if not present:
            raise ValueError(f"no other 2D MedMNIST file at {size} px to pretrain on; add one (e.g. pneumoniamnist) "
                             "to $MEDLIB_DATA or pass -p source")
        return present[0]
    if source == target:
        raise ValueError(f"source and target are both {target!r}: pretrain on another dataset")
    if source not in present:
        raise ValueError(f"source {source!r} is not present at {size} px; present: {', '.join(present) or 'none'}")
    return source


def finetune_kwargs(strategy: str, train: Split, epochs: int | None = None) -> dict:
    """`train_classifier` keywords for fine-tuning a pretrained network with `strategy`
    (chapter 01's standard recipe, the fine-tuning budget and learning rate)."""
    kw = recipe("standard", train, epochs or standard_epochs(len(train), FINETUNE["images"], lo=20, hi=100))
    kw["lr"] = FINETUNE["lr"][strategy]
    return kw


def scratch_kwargs(train: Split, epochs: int | None = None) -> dict:
    """From scratch: chapter 01's standard recipe and budget, unchanged."""
    return recipe("standard", train, epochs)


# ----------------------------------------------------------------------------- the encoder cache
def cache_dir(run) -> Path:
    """Where a run's pretrained encoders are kept: `encoders/` beside the chapter's run folders."""
    return Path(run.dir).parent / "encoders"


def data_provenance(path: Path) -> dict:
    return {"file": path.name, "md5": md5sum(path)}


def cached(run, kind: str, provenance: dict, model: torch.nn.Module, train: Callable[[], None], *,
           head: bool = False) -> dict:
    """Train `model` with `train()` and save it (the encoder, or with `head` the whole classifier)
    in the cache with its provenance — or, with the run's `reuse` set and a checkpoint of the same
    provenance present, load that instead. Returns the provenance with `seconds` (the training
    cost, then or now) and `reused`."""
    key = hashlib.sha256(json.dumps(provenance, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = cache_dir(run) / f"{kind}_{key}.pt"
    if run.params.get("reuse") and path.exists():
        meta = transfer.load_encoder(path, model)
        print(f"reuse=True: loaded {kind} from {path.name} (trained by run {meta['run']} in {meta['seconds']:.0f} s, "
              f"checksum {meta['checksum']})")
        return {**meta, "reused": True, "path": str(path)}
    t0 = time.perf_counter()
    out = train()
    seconds = time.perf_counter() - t0
    if isinstance(out, History):
        out = {"best_epoch": out.best_epoch, "best_score": out.best_score, "select_by": out.select_by}
    meta = {**provenance, **(out or {}), "kind": kind, "seconds": seconds, "run": run.dir.name,
            "git_commit": run.code.get("git_commit"), "checksum": env.weights_checksum(model)}
    transfer.save_encoder(path, model, meta, head=head)
    return {**meta, "reused": False, "path": str(path)}


# ----------------------------------------------------------------------------- label-efficiency curves
def on_curve(record: dict) -> bool:
    """Whether a chapter 06 record belongs on the label-efficiency curve: the default choices
    (strategy and source "auto", the fine-tuning budget), so that runs with other settings are
    not averaged into it."""
    p = record.get("params", {})
    return p.get("strategy") == "auto" and p.get("source") == "auto" and p.get("epochs") is None


def curve_points(records: list[dict], metric: str = "auc"):
    """One row per run and curve (a DataFrame): panel ("reference": from scratch and the run's
    validation-chosen model; "sources"; "strategies"), strategy, fraction, seed, value — from chapter 06 results.json records (the newest run per
    fraction and seed) with the default choices (`on_curve`)."""
    import pandas as pd

    from medlib.transfer import STRATEGIES, STRATEGY_NAMES

    newest = {}
    for r in sorted(filter(on_curve, records), key=lambda r: r.get("timestamp", "")):
        newest[(r["params"]["label_fraction"], r["seed"])] = r
    rows = []
    for (fraction, seed), r in newest.items():
        t = r["metrics"]["test"]
        curves = [("reference", "from scratch", f"scratch_{metric}"), ("reference", "validation's choice", metric),
                  ("sources", "supervised, full", f"supervised_full_{metric}"),
                  ("sources", "SimCLR, full", f"simclr_full_{metric}")]
        curves += [("strategies", STRATEGY_NAMES[s], f"{r.get('source_chosen')}_{s}_{metric}") for s in STRATEGIES]
        rows += [{"panel": panel, "strategy": name, "fraction": fraction, "seed": seed, "value": t[key]}
                 for panel, name, key in curves if key in t]
    return pd.DataFrame(rows)


def curve_summary(points):
    """Mean and 95 % t-interval over seeds per (panel, strategy, fraction)."""
    import pandas as pd

    from medlib.metrics.common import t_interval

    out = [{"panel": p, "strategy": s, "fraction": f, **t_interval(g["value"].to_numpy())}
           for (p, s, f), g in points.groupby(["panel", "strategy", "fraction"], sort=False)]
    return pd.DataFrame(out)


def bench_curve_path(target: str, size: int) -> Path:
    return paths.REPO_ROOT / "bench" / "results" / f"06_label_efficiency_{target}_{size}.json"


def curve_table(target: str, size: int, profile: str, root=None):
    """(summary, points, where): the label-efficiency curve of `target` from the chapter 06 runs in
    the runs folder when it holds >= 3 seeds at >= 2 fractions, else the curve recorded in bench/
    (measured by `medlib sweep sweeps/06_label_efficiency.yaml`), else (None, None, "")."""
    import pandas as pd

    from medlib.results import load_results

    recs = [r for r in load_results(root) if r.get("chapter") == CHAPTER and r.get("dataset") == target
            and r.get("size") == size and r.get("profile") == profile]
    pts = curve_points(recs)
    if len(pts):
        seeds = pts.groupby("fraction")["seed"].nunique()
        if (seeds >= 3).sum() >= 2:
            return curve_summary(pts), pts, f"{pts[['fraction', 'seed']].drop_duplicates().shape[0]} runs in {paths.runs_dir(root)}"
    bench = bench_curve_path(target, size)
    if bench.exists():
        saved = json.loads(bench.read_text())
        return (pd.DataFrame(saved["summary"]), pd.DataFrame(saved["points"]),
                f"recorded in bench/ ({saved['n_runs']} runs, commit {saved['commit'][:8]})")
    return None, None, ""


def compare_at(summary, fraction: float, a: str = "validation's choice", b: str = "from scratch") -> dict:
    """Curve `a` against curve `b` at the recorded fraction nearest `fraction`: both means and
    95 % intervals, and whether the intervals overlap."""
    fr = min(summary["fraction"].unique(), key=lambda f: abs(f - fraction))
    row = lambda name: summary[(summary["strategy"] == name) & (summary["fraction"] == fr)].iloc[0]  # noqa: E731
    ra, rb = row(a), row(b)
    return {"fraction": float(fr), a: (ra["mean"], ra["lo"], ra["hi"], int(ra["n"])), b: (rb["mean"], rb["lo"], rb["hi"], int(rb["n"])),
            "overlap": not (ra["lo"] > rb["hi"] or rb["lo"] > ra["hi"])}


def paired_difference(points, fraction: float, a: str = "validation's choice", b: str = "from scratch") -> dict:
    """Curve `a` minus curve `b` seed by seed (each seed shares its label subset) at the recorded
    fraction nearest `fraction`: the differences, their mean and 95 % t-interval."""
    from scipy import stats

    fr = min(points["fraction"].unique(), key=lambda f: abs(f - fraction))
    at = points[points["fraction"] == fr].pivot_table(index="seed", columns="strategy", values="value")
    d = (at[a] - at[b]).dropna().to_numpy()
    n, m = len(d), float(d.mean())
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / n ** 0.5) if n > 1 else float("nan")
    return {"fraction": float(fr), "differences": d.tolist(), "mean": m, "lo": m - half, "hi": m + half, "n": n}

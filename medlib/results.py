"""results.json per run, and the leaderboard of every recorded run.

Schema (docs/design.md, Results): chapter, dataset, size, model, profile, params, seed,
metrics.<split>.<name>, model_params, train_seconds, images_per_s, device, versions, the
code (git commit, dirty flag, fingerprint of uncommitted changes), the initial weights'
checksums, when the test split was opened, timestamps. Written atomically; an existing
results.json is never overwritten, and the fields medlib writes cannot be overridden.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from medlib import env, paths
from medlib.io import write_json_atomic

# Written by medlib from the run itself; `record(**extra)` may not replace them.
RESERVED = ("chapter", "profile", "params", "seed", "metrics", "device", "device_name", "versions",
            "git_commit", "git_dirty", "code_diff_sha256", "untracked_sources", "code_fingerprint",
            "init", "test_opened", "reused", "started", "timestamp", "run_dir")
# Filled from the run's parameters unless the chapter passes its own value.
DEFAULTS = ("dataset", "size", "model", "model_params", "train_seconds", "images_per_s")


def build_record(run, metrics: dict, **extra: Any) -> dict:
    """The record of a run: what the run knows about itself, then the chapter's `extra`."""
    clash = sorted(set(extra) & set(RESERVED))
    if clash:
        raise ValueError(f"record(): {', '.join(map(repr, clash))} is written by medlib from the run itself "
                         "and cannot be passed as an extra field; give your value another name")
    for split, vals in metrics.items():
        if not isinstance(vals, dict):
            raise ValueError(f"metrics must be {{split: {{name: value}}}}; got {split!r}: {vals!r}")
    record = {
        "chapter": run.chapter,
        **{k: run.params.get(k) for k in DEFAULTS},
        "profile": run.profile,
        "params": run.params,
        "seed": run.seed,
        "metrics": metrics,
        "device": str(run.device),
        "device_name": env.device_name(run.device),
        "versions": env.library_versions(),
        **run.code,  # taken when the run started (setup), not at the end
        "init": run.init,  # {label: {"seed": ..., "checksum": ...}} of every model built by run.build
        "test_opened": run.test_opened,
        "reused": run.reused,  # None, or the run whose trained model was loaded instead of training
        "started": run.started,
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(),
        "run_dir": str(run.dir),
    }
    record.update(extra)
    return record


def write_results(run, metrics: dict, **extra: Any) -> Path:
    """Write `<run dir>/results.json` (atomically; never over an existing one)."""
    return write_json_atomic(run.path("results.json"), build_record(run, metrics, **extra))


def load_results(root=None) -> list[dict]:
    """Every results.json under the runs directory (unreadable files are skipped with a warning)."""
    out = []
    for p in sorted(paths.runs_dir(root).glob("*/*/results.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError) as e:
            print(f"warning: skipping {p}: {e}")
    return out


def leaderboard(root=None, split: str = "test", chapter: str | None = None):
    """A pandas DataFrame of every run: chapter, dataset, model, profile, seed, <split> metrics, cost."""
    import pandas as pd

    rows = []
    for r in load_results(root):
        if chapter and r.get("chapter") != chapter:
            continue
        if not (r.get("metrics") or {}).get(split):  # a report (chapter 10) measures no model
            continue
        row = {k: r.get(k) for k in ("chapter", "dataset", "size", "model", "profile", "seed")}
        row.update({k: v for k, v in ((r.get("metrics") or {}).get(split) or {}).items() if not isinstance(v, dict)})
        row.update({k: r.get(k) for k in ("model_params", "train_seconds", "images_per_s", "device")})
        row["run"] = Path(r.get("run_dir", "")).name
        rows.append(row)
    return pd.DataFrame(rows)


# Variant columns hidden by `leaderboard_tables(full=False)`: CI bounds and the pooled
# twins of a headline metric (results.json keeps them all).
_DETAIL_SUFFIXES = ("_lo", "_hi", "_pooled", "_undefined")


def leaderboard_tables(df, full: bool = False) -> dict:
    """Split a `leaderboard()` frame into one compact table per chapter.

    Columns that are empty for every run of a chapter are dropped; unless `full`, so are the
    detail variants (CI bounds, pooled twins). Runs are listed oldest first.
    """
    tables = {}
    for chapter, part in df.groupby("chapter", sort=True):
        part = part.dropna(axis=1, how="all").drop(columns=["chapter"])
        head = [c for c in ("dataset", "size", "model", "profile", "seed") if c in part]
        tail = [c for c in ("model_params", "train_seconds", "images_per_s", "device", "run") if c in part]
        part = part[head + [c for c in part.columns if c not in head + tail] + tail]
        if not full:
            part = part[[c for c in part.columns if not str(c).endswith(_DETAIL_SUFFIXES)]]
        for col in ("size", "seed", "model_params"):
            if col in part:
                part[col] = part[col].astype("Int64")  # 28, not 28.000
        tables[chapter] = part.reset_index(drop=True)
    return tables

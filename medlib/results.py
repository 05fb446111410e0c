"""results.json per run, published baselines as data, and the leaderboard.

Schema (DESIGN.md, Results): chapter, dataset, size, model, profile, params, seed,
metrics.<split>.<name>, model_params, train_seconds, images_per_s, device, versions,
git commit, timestamp. Written atomically; an existing results.json is never overwritten.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from medlib import paths

# --- MedMNIST v2 baselines ----------------------------------------------------------------
# Test AUC / ACC from Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D
# and 3D biomedical image classification", Scientific Data 10:41 (2023), Tables 3-4;
# transcribed from the paper, keep this citation with the table.
MEDMNIST_V2_SOURCE = "Yang et al., MedMNIST v2, Scientific Data 10:41 (2023), https://doi.org/10.1038/s41597-022-01721-8"

_COLS_2D = ["pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
            "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist"]
_ROWS_2D = {
    "ResNet-18 (28)": ".983/.907 .768/.947 .917/.735 .943/.743 .944/.854 .717/.524 .901/.863 .998/.958 .930/.676 .997/.935 .992/.900 .972/.782",
    "ResNet-18 (224)": ".989/.909 .773/.947 .920/.754 .958/.763 .956/.864 .710/.493 .891/.833 .998/.963 .933/.681 .998/.951 .994/.920 .974/.778",
    "ResNet-50 (28)": ".990/.911 .769/.947 .913/.735 .952/.762 .948/.854 .726/.528 .857/.812 .997/.956 .931/.680 .997/.935 .992/.905 .972/.770",
    "ResNet-50 (224)": ".989/.892 .773/.948 .912/.731 .958/.776 .962/.884 .716/.511 .866/.842 .997/.950 .932/.680 .998/.947 .993/.911 .975/.785",
    "auto-sklearn": ".934/.716 .649/.779 .902/.719 .887/.601 .942/.855 .690/.515 .836/.803 .984/.878 .828/.532 .963/.762 .976/.829 .945/.672",
    "AutoKeras": ".959/.834 .742/.937 .915/.749 .955/.763 .947/.878 .719/.503 .871/.831 .998/.961 .941/.703 .994/.905 .990/.879 .974/.813",
    "Google AutoML Vision": ".944/.728 .778/.948 .914/.768 .963/.771 .991/.946 .750/.531 .919/.861 .998/.966 .924/.673 .990/.886 .988/.877 .964/.749",
}
_COLS_3D = ["organmnist3d", "nodulemnist3d", "fracturemnist3d", "adrenalmnist3d", "vesselmnist3d", "synapsemnist3d"]
_ROWS_3D = {
    "ResNet-18+2.5D": ".977/.788 .838/.835 .587/.451 .718/.772 .748/.846 .634/.696",
    "ResNet-18+3D": ".996/.907 .863/.844 .712/.508 .827/.721 .874/.877 .820/.745",
    "ResNet-18+ACS": ".994/.900 .873/.847 .714/.497 .839/.754 .930/.928 .705/.722",
    "ResNet-50+2.5D": ".974/.769 .835/.848 .552/.397 .732/.763 .751/.877 .669/.735",
    "ResNet-50+3D": ".994/.883 .875/.847 .725/.494 .828/.745 .907/.918 .851/.795",
    "ResNet-50+ACS": ".994/.889 .886/.841 .750/.517 .828/.758 .912/.858 .719/.709",
    "auto-sklearn": ".977/.814 .914/.874 .628/.453 .828/.802 .910/.915 .631/.730",
    "AutoKeras": ".979/.804 .844/.834 .642/.458 .804/.705 .773/.894 .538/.724",
}


def _parse(cols, rows) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {c: {} for c in cols}
    for model, cells in rows.items():
        for col, cell in zip(cols, cells.split(), strict=True):
            a, b = cell.split("/")
            out[col][model] = {"auc": float(a), "acc": float(b)}
    return out


MEDMNIST_V2 = {**_parse(_COLS_2D, _ROWS_2D), **_parse(_COLS_3D, _ROWS_3D)}


def medmnist_baselines(flag: str) -> dict[str, dict[str, float]]:
    """All published MedMNIST v2 rows for a dataset: {model: {"auc":..., "acc":...}}."""
    if flag not in MEDMNIST_V2:
        raise ValueError(f"no MedMNIST v2 baselines for {flag!r}; valid choices: {', '.join(MEDMNIST_V2)}")
    return MEDMNIST_V2[flag]


def medmnist_baseline(flag: str, model: str | None = None) -> dict[str, float]:
    """One row (default: ResNet-18 (28) for 2D, ResNet-18+3D for 3D)."""
    rows = medmnist_baselines(flag)
    model = model or ("ResNet-18+3D" if flag.endswith("3d") else "ResNet-18 (28)")
    if model not in rows:
        raise ValueError(f"unknown baseline {model!r}; valid choices: {', '.join(rows)}")
    return rows[model]


def best_baseline(flag: str) -> tuple[str, dict[str, float]]:
    """The best published AUC and the best published ACC (they may come from different rows)."""
    rows = medmnist_baselines(flag)
    return "best of v2", {k: max(r[k] for r in rows.values()) for k in ("auc", "acc")}


# --- results.json --------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> str | None:
    return _git("rev-parse", "HEAD") or None


def git_state() -> dict:
    """The code a run starts from: HEAD's commit and whether tracked files differ from it."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git_commit(), "git_dirty": None if status is None else bool(status)}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:
        return _jsonable(x.item())
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def write_json_atomic(path: Path, obj: Any, overwrite: bool = False) -> Path:
    """Write JSON to a temporary file and rename it into place (never a half-written file)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; a run never overwrites another run's results")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(obj), f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_results(run, metrics: dict, **extra: Any) -> Path:
    """Build the record of a run and write `<run dir>/results.json`."""
    from medlib.config import _device_name, _library_versions

    for split, vals in metrics.items():
        if not isinstance(vals, dict):
            raise ValueError(f"metrics must be {{split: {{name: value}}}}; got {split!r}: {vals!r}")
    record = {
        "chapter": run.chapter,
        "dataset": run.params.get("dataset"),
        "size": run.params.get("size"),
        "model": run.params.get("model"),
        "profile": run.profile,
        "params": run.params,
        "seed": run.seed,
        "metrics": metrics,
        "model_params": None,
        "train_seconds": None,
        "images_per_s": None,
        "device": str(run.device),
        "device_name": _device_name(run.device),
        "versions": _library_versions(),
        **(run.code or git_state()),  # taken when the run started (setup), not at the end
        "started": run.started,
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(),
        "run_dir": str(run.dir),
    }
    record.update(extra)
    return write_json_atomic(run.path("results.json"), record)


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
        row = {k: r.get(k) for k in ("chapter", "dataset", "size", "model", "profile", "seed")}
        row.update((r.get("metrics") or {}).get(split) or {})
        row.update({k: r.get(k) for k in ("model_params", "train_seconds", "images_per_s", "device")})
        row["run"] = Path(r.get("run_dir", "")).name
        rows.append(row)
    return pd.DataFrame(rows)


# Variant columns hidden by `leaderboard_tables(full=False)`: CI bounds and the
# per-image/pooled twins of a headline metric (results.json keeps them all).
_DETAIL_SUFFIXES = ("_lo", "_hi", "_per_image", "_pooled", "_undefined")


def leaderboard_tables(df, full: bool = False) -> dict:
    """Split a `leaderboard()` frame into one compact table per chapter.

    Columns that are empty for every run of a chapter are dropped; unless `full`, so are the
    detail variants (CI bounds, per-image/pooled twins). Runs are listed oldest first.
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

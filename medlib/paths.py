"""Where things live: the repository, the data directory, the runs directory, run names."""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: explicit argument > $MEDLIB_DATA > <repo>/datasets."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get("MEDLIB_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return REPO_ROOT / "datasets"


def runs_dir(path: str | os.PathLike | None = None) -> Path:
    """The runs directory: explicit argument > $MEDLIB_RUNS > <repo>/runs."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get("MEDLIB_RUNS")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "runs"


def safe_name(name: str, what: str = "run name") -> str:
    """Check that `name` is a plain file name (no '/', '..', or spaces) and return it."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-' only "
            "(it must start with a letter or digit and cannot contain '..' or '/')"
        )
    return name


def inside(child: Path, parent: Path) -> Path:
    """Return `child` resolved, after checking that it lies inside `parent`."""
    child, parent = Path(child).resolve(), Path(parent).resolve()
    if parent != child and parent not in child.parents:
        raise ValueError(f"{child} is outside {parent}; refusing to write there")
    return child


def run_tag(params: dict) -> str:
    """'<dataset>-<model>' from a run's parameters, reduced to safe characters (a folder
    dataset contributes its last path component)."""
    tag = "-".join(Path(str(params[k])).name for k in ("dataset", "model") if params.get(k) is not None)
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in tag)[:60]


def new_run_dir(chapter: str, params: dict, root: str | os.PathLike | None = None) -> Path:
    """Create runs/<chapter>/<timestamp>-<tag>-<random>; never an existing directory."""
    base = runs_dir(root) / safe_name(chapter, "chapter")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    tag = run_tag(params)
    while True:  # a new run never reuses (and so never overwrites) a directory
        path = inside(base / f"{stamp}{'-' + tag if tag else ''}-{secrets.token_hex(2)}", base)
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue

"""Atomic file writes: a reader never sees a half-written file, and nothing is overwritten
unless asked. One home for JSON records, checkpoints and benchmark results."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], overwrite: bool = True) -> Path:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it into place.

    With overwrite=False an existing file is an error (FileExistsError) and is left untouched."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def jsonable(x: Any) -> Any:
    """Plain JSON types: NumPy/torch scalars and arrays to numbers and lists, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:
        return jsonable(x.item())
    if hasattr(x, "tolist") and callable(x.tolist):  # a torch tensor
        return jsonable(x.tolist())
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def write_json_atomic(path, obj: Any, overwrite: bool = False, indent: int = 2) -> Path:
    """JSON (NaN written as null), atomically; an existing file is kept unless overwrite."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(jsonable(obj), f, indent=indent, allow_nan=False)
            f.write("\n")

    return atomic_write(path, write, overwrite)


def save_torch_atomic(obj: Any, path) -> Path:
    """`torch.save` atomically (checkpoints are replaced as a whole, never half-written)."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))

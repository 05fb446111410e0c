"""MedMNIST files on disk -> uint8 tensors in memory -> normalised batches on the device.

Files live at `<data>/medmnist/<flag>.npz` (28 px) or `<flag>_<size>.npz`, the names the
medmnist package uses. Every file's MD5 is checked before use. A missing file is downloaded
when the network allows; otherwise one clear error says what to do. Explained in chapter 00.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medlib import paths
from medlib.data.heldout import HeldOut
from medlib.data.registry import DatasetInfo, info

SPLITS = ("train", "val", "test")


class DataError(RuntimeError):
    """Missing, corrupted or unreadable data, with what to do about it."""


_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def md5sum(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _MD5_CACHE:
        h = hashlib.md5()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _MD5_CACHE[key] = h.hexdigest()
    return _MD5_CACHE[key]


def medmnist_path(flag: str, size: int = 28, root: str | os.PathLike | None = None) -> Path:
    return paths.data_dir(root) / "medmnist" / info(flag).filename(size)


def _missing_message(ds: DatasetInfo, size: int, path: Path, reason: str) -> str:
    return (
        f"MedMNIST file not found: {path}\n"
        f"  dataset {ds.title} ({ds.flag}), size {size}\n"
        f"  expected MD5 {ds.md5(size)}\n"
        f"  URL {ds.url(size)}\n"
        f"  automatic download failed: {reason}\n"
        "Provide it in one of two ways:\n"
        f"  1. download the file from the URL and place it at {path}\n"
        "  2. or set MEDLIB_DATA to a folder that holds medmnist/"
        f"{ds.filename(size)} (e.g. export MEDLIB_DATA=../shared/datasets)"
    )


def _download(url: str, dest: Path, md5: str, timeout: float = 20.0) -> None:
    """Download to a temporary file beside `dest`, check the MD5, then rename atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        got = md5sum(Path(tmp))
        if got != md5:
            raise DataError(f"downloaded {url} but its MD5 is {got}, expected {md5}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def ensure_file(flag: str, size: int = 28, root=None, download: bool | None = None) -> Path:
    """Return the verified path of a MedMNIST file, downloading it if allowed and possible.

    `download=None` means: try unless $MEDLIB_OFFLINE is set.
    """
    ds = info(flag)
    path = medmnist_path(flag, size, root)
    if download is None:
        download = not os.environ.get("MEDLIB_OFFLINE")
    if not path.exists():
        if not download:
            why = "download=False" if os.environ.get("MEDLIB_OFFLINE") is None else "MEDLIB_OFFLINE is set"
            raise DataError(_missing_message(ds, size, path, f"not attempted ({why})"))
        try:
            _download(ds.url(size), path, ds.md5(size))
        except Exception as e:  # no network, HTTP error, bad checksum...
            raise DataError(_missing_message(ds, size, path, f"{type(e).__name__}: {e}")) from None
    got = md5sum(path)
    if got != ds.md5(size):
        raise DataError(
            f"checksum mismatch for {path}: MD5 is {got}, expected {ds.md5(size)} "
            f"({path.stat().st_size:,} bytes on disk).\n"
            "The file is corrupted or truncated (an interrupted download?). It was NOT used and "
            f"NOT deleted. Replace it with a fresh copy from {ds.url(size)} "
            "or point MEDLIB_DATA at a folder with a verified copy."
        )
    return path


@dataclass
class Split:
    """One split held in memory: images (N, C, H, W) or (N, C, D, H, W) uint8, labels (N, L) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo
    name: str = "train"

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def targets(self) -> torch.Tensor:
        """Labels as the loss wants them: class ids (N,) or multi-label floats (N, L)."""
        if self.info.multilabel:
            return self.labels.float()
        return self.labels[:, 0]

    def class_counts(self) -> np.ndarray:
        y = self.labels.numpy()
        if self.info.multilabel:
            return y.sum(0)
        return np.bincount(y[:, 0], minlength=self.info.n_classes)

    def subset(self, n: int | None, seed: int = 0) -> Split:
        """A stratified subset of `n` items (the whole split if n is None or >= len)."""
        if n is None or n >= len(self):
            return self
        idx = stratified_indices(self.labels.numpy(), n, seed, self.info.multilabel)
        idx_t = torch.as_tensor(idx)
        return Split(self.images[idx_t], self.labels[idx_t], self.info, self.name)


def stratified_indices(labels: np.ndarray, n: int, seed: int = 0, multilabel: bool = False) -> np.ndarray:
    """Pick `n` indices keeping class proportions (multi-label: stratify on the label pattern's
    first positive label, 'none' counted as its own class). Every class keeps >= 1 item."""
    rng = np.random.default_rng(seed)
    if multilabel:
        strata = np.where(labels.any(1), labels.argmax(1), -1)
    else:
        strata = labels[:, 0]
    classes, counts = np.unique(strata, return_counts=True)
    share = np.maximum(1, np.floor(counts / counts.sum() * n).astype(int))
    while share.sum() > n:  # trim the largest strata if the minimum of 1 overshot
        share[share.argmax()] -= 1
    leftover = n - share.sum()
    room = counts - share
    order = rng.permutation(len(classes))
    for i in order:  # hand out the remainder where there is room
        if leftover <= 0:
            break
        add = min(room[i], leftover)
        share[i] += add
        leftover -= add
    picks = [rng.choice(np.flatnonzero(strata == c), k, replace=False) for c, k in zip(classes, share)]
    return np.sort(np.concatenate(picks))


@dataclass
class MedMNISTData:
    """All three splits of one MedMNIST dataset at one size; `test` is sealed (`HeldOut`)
    until the run's final evaluation opens it (`run.open_test(data)`)."""

    info: DatasetInfo
    size: int
    path: Path
    train: Split
    val: Split
    test: HeldOut

    def split(self, name: str) -> Split | HeldOut:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid choices: {', '.join(SPLITS)}")
        return getattr(self, name)


def _to_tensor(images: np.ndarray, dim: int) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(images))
    if dim == 2:
        return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()  # (N,C,H,W)
    return t.unsqueeze(1) if t.ndim == 4 else t.permute(0, 4, 1, 2, 3).contiguous()  # (N,C,D,H,W)


_CACHE: dict[tuple, MedMNISTData] = {}


def load(flag: str, size: int = 28, root=None, download: bool | None = None) -> MedMNISTData:
    """Load (and verify) a MedMNIST dataset; cached per process."""
    path = ensure_file(flag, size, root, download)
    key = (str(path), md5sum(path))
    if key in _CACHE:
        return _CACHE[key]
    ds = info(flag)
    try:
        with np.load(path) as z:
            splits = {
                s: Split(_to_tensor(z[f"{s}_images"], ds.dim), torch.from_numpy(z[f"{s}_labels"]).long(), ds, s)
                for s in SPLITS
            }
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise DataError(f"could not read {path}: {type(e).__name__}: {e}. Replace the file.") from None
    for s, sp in splits.items():
        if len(sp) != ds.n_samples[s]:
            raise DataError(f"{path}: split {s} has {len(sp)} items, INFO says {ds.n_samples[s]}")
    data = MedMNISTData(ds, size, path, splits["train"], splits["val"], HeldOut(splits["test"]))
    _CACHE[key] = data
    return data


def available(root=None) -> list[tuple[str, int, Path, str]]:
    """Every MedMNIST file present under the data dir: (flag, size, path, status)."""
    from medlib.data.registry import registry

    out = []
    for flag, ds in registry().items():
        for size in ds.sizes:
            p = medmnist_path(flag, size, root)
            if p.exists():
                status = "verified" if md5sum(p) == ds.md5(size) else "CHECKSUM MISMATCH"
                out.append((flag, size, p, status))
    return out

"""Segmentation datasets: DSB2018-96 nuclei, DRIVE retinal vessels, and any folder of
images + masks, each as train / val / test splits in memory.

Every split is held as uint8 tensors (`SegSplit`): images (N, C, H, W), masks (N, H, W)
with class indices (0/1 when binary), optional field-of-view masks (N, H, W). The test
split is sealed (`HeldOut`) until a run's final evaluation. Batches are drawn by
`medlib.data.batches.SegBatches`; whole images are predicted by `medlib.inference`.
Explained in chapter 05.

Splits
- DSB2018-96 (670 images, 96×96): the sorted file names are shuffled with
  `numpy.random.default_rng(2018)`; the first 470 are train, the next 66 val, the last
  134 (20 %) test. Masks are thresholded at 127 (the resized masks are interpolated).
- DRIVE: the standard 20 training images (21–40) and 20 test images (01–20).
  Validation is carved from training: images 37–40 (`n_val=4`). Truth is `1st_manual`;
  `test.observer` holds `2nd_manual` (the second human observer); `fov` the FOV masks.
- Folder: `<dir>/images/*` and `<dir>/masks/*` with matching names (stem); split like
  DSB (70/15/15 by default) with `numpy.random.default_rng(seed)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medlib import paths
from medlib.data.heldout import HeldOut
from medlib.data.images import IMAGE_EXTS, green_clahe, read_image, read_mask

DSB_SPLIT = (470, 66, 134)  # train / val / test of the 670 images
DSB_SPLIT_SEED = 2018


# ----------------------------------------------------------------------------- containers
@dataclass
class SegSplit:
    """One split in memory: uint8 images (N, C, H, W), masks (N, H, W), fov (N, H, W)."""

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]
    fov: torch.Tensor | None = None
    observer: torch.Tensor | None = None  # a second annotator's masks (DRIVE test)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, n: int | None) -> SegSplit:
        """The first `n` images (all when n is None)."""
        if n is None or n >= len(self):
            return self
        cut = lambda t: None if t is None else t[:n]  # noqa: E731
        return SegSplit(self.images[:n], self.masks[:n], self.names[:n], cut(self.fov), cut(self.observer))


@dataclass
class SegDataset:
    """train / val / test splits and the facts a chapter needs; `test` is sealed (`HeldOut`)."""

    name: str
    train: SegSplit
    val: SegSplit
    test: HeldOut
    num_classes: int  # 2 for binary masks
    mean: list[float] = field(default_factory=list)  # per channel, of train images in [0, 1]
    std: list[float] = field(default_factory=list)
    description: str = ""

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def out_channels(self) -> int:
        """1 logit map for binary masks, else one per class."""
        return 1 if self.num_classes == 2 else self.num_classes

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) → float, scaled to [0, 1] and standardised per channel."""
        x = images.float() / 255
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def __repr__(self) -> str:
        sizes = "/".join(str(len(s)) for s in (self.train, self.val, self.test))
        shape = tuple(self.train.images.shape[1:])
        return f"SegDataset({self.name!r}, train/val/test={sizes}, image {shape}, classes={self.num_classes})"


def _stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    x = images.float() / 255  # (N, C, H, W)
    return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).clamp(min=1e-3).tolist()


def _missing(what: str, folder: Path, hint: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{what} not found at {folder}. {hint} Place it there, or set MEDLIB_DATA to the folder "
        "that contains it (e.g. MEDLIB_DATA=../shared/datasets); see datasets/README.md."
    )


def _to_split(images: list[np.ndarray], masks: list[np.ndarray], names, fov=None, observer=None):
    imgs = [a[..., None] if a.ndim == 2 else a for a in images]
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    m = torch.from_numpy(np.stack(masks).astype(np.uint8))  # (N, H, W)
    as_t = lambda a: None if a is None else torch.from_numpy(np.stack(a).astype(np.uint8))  # noqa: E731
    return SegSplit(x, m, list(names), as_t(fov), as_t(observer))


# ----------------------------------------------------------------------------- DSB2018-96
def load_dsb2018_96(root=None) -> SegDataset:
    """DSB2018 nuclei resized to 96×96 (670 images): fixed 470/66/134 split, masks > 127."""
    folder = paths.data_dir(root) / "dsb2018_96"
    if not (folder / "images").is_dir() or not (folder / "masks").is_dir():
        raise _missing("DSB2018-96", folder, "Expected dsb2018_96/images/*.png and dsb2018_96/masks/*.png.")
    names = sorted(p.name for p in (folder / "images").glob("*.png"))
    order = np.random.default_rng(DSB_SPLIT_SEED).permutation(len(names))
    names = [names[i] for i in order]
    images, masks = [], []
    for n in names:
        images.append(read_image(folder / "images" / n))
        masks.append((read_mask(folder / "masks" / n) > 127).astype(np.uint8))
    a, b = DSB_SPLIT[0], DSB_SPLIT[0] + DSB_SPLIT[1]
    if len(names) != sum(DSB_SPLIT):
        raise ValueError(f"expected {sum(DSB_SPLIT)} DSB2018-96 images in {folder}, found {len(names)}")
    train = _to_split(images[:a], masks[:a], names[:a])
    mean, std = _stats(train.images)
    return SegDataset(
        "dsb2018_96",
        train,
        _to_split(images[a:b], masks[a:b], names[a:b]),
        HeldOut(_to_split(images[b:], masks[b:], names[b:])),
        num_classes=2,
        mean=mean,
        std=std,
        description="DSB2018 nuclei (BBBC038), 96×96 RGB; split 470/66/134 by rng(2018)",
    )


# ----------------------------------------------------------------------------- DRIVE
def load_drive(root=None, n_val: int = 4, channels: str = "green_clahe") -> SegDataset:
    """DRIVE: 16 train / 4 val (images 37–40) / 20 test, with FOV masks and 2nd observer.

    channels: "green_clahe" (1 channel, green + CLAHE, the usual choice) or "rgb".
    """
    folder = paths.data_dir(root) / "drive"
    if not (folder / "training" / "images").is_dir() or not (folder / "test" / "images").is_dir():
        raise _missing(
            "DRIVE", folder, "Expected drive/training/{images,1st_manual,mask} and drive/test/{...,2nd_manual}."
        )
    if channels not in ("green_clahe", "rgb"):
        raise ValueError(f"unknown channels {channels!r}; valid choices: 'green_clahe', 'rgb'")
    prep = green_clahe if channels == "green_clahe" else (lambda a: a)

    def read(part: str, ids, suffix: str, observer: bool = False):
        imgs, masks, fovs, obs = [], [], [], []
        for i in ids:
            imgs.append(prep(read_image(folder / part / "images" / f"{i:02d}_{suffix}.tif")))
            masks.append(read_mask(folder / part / "1st_manual" / f"{i:02d}_manual1.gif") > 0)
            fovs.append(read_mask(folder / part / "mask" / f"{i:02d}_{suffix}_mask.gif") > 0)
            if observer:
                obs.append(read_mask(folder / part / "2nd_manual" / f"{i:02d}_manual2.gif") > 0)
        names = [f"{i:02d}_{suffix}" for i in ids]
        return _to_split(imgs, masks, names, fovs, obs if observer else None)

    if not 1 <= n_val <= 10:
        raise ValueError(f"n_val must be between 1 and 10, got {n_val}")
    train_ids = list(range(21, 41 - n_val))
    val_ids = list(range(41 - n_val, 41))
    train = read("training", train_ids, "training")
    mean, std = _stats(train.images)
    return SegDataset(
        "drive",
        train,
        read("training", val_ids, "training"),
        HeldOut(read("test", range(1, 21), "test", observer=True)),
        num_classes=2,
        mean=mean,
        std=std,
        description=f"DRIVE (Staal 2004) 565×584; {len(train_ids)} train / {n_val} val / 20 test; {channels}",
    )


# ----------------------------------------------------------------------------- any folder
def _list_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."):
            if p.stem in files:
                raise ValueError(f"two files share the name {p.stem!r} in {folder}: {files[p.stem].name}, {p.name}")
            files[p.stem] = p
    return files


def _show(items, n: int = 8) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f" ... ({len(items)} in all)" if len(items) > n else "")


def load_folder(
    path,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    threshold: int | None = None,
    max_classes: int = 32,
    size: tuple[int, int] | None = None,
) -> SegDataset:
    """Your own data: `<path>/images/*` and `<path>/masks/*` with matching file names.

    Masks may be binary (values {0, 255} or {0, 1}) or multi-class (integer labels
    0..K-1, K <= max_classes). `threshold` binarises masks as value > threshold (for
    interpolated masks). `size=(H, W)` resizes everything (bilinear images, nearest
    masks); otherwise all images must share one size. Errors name the offending files.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"{root} has no '{sub}/' folder; expected {root}/images and {root}/masks")
    imgs, msks = _list_files(root / "images"), _list_files(root / "masks")
    if not imgs:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTS)}) in {root / 'images'}")
    only_img, only_msk = sorted(set(imgs) - set(msks)), sorted(set(msks) - set(imgs))
    if only_img or only_msk:
        msg = [f"images and masks in {root} do not match by name:"]
        if only_img:
            msg.append(f"images without a mask: {_show(imgs[s].name for s in only_img)}")
        if only_msk:
            msg.append(f"masks without an image: {_show(msks[s].name for s in only_msk)}")
        raise ValueError("\n  ".join(msg))

    stems = sorted(imgs)
    images, masks, bad_size = [], [], []
    for s in stems:
        im, mk = read_image(imgs[s]), read_mask(msks[s])
        if im.shape[:2] != mk.shape:
            bad_size.append(f"{imgs[s].name} {im.shape[1]}×{im.shape[0]} vs {msks[s].name} {mk.shape[1]}×{mk.shape[0]}")
        images.append(im)
        masks.append(mk)
    if bad_size:
        raise ValueError(f"image and mask sizes differ (width×height): {_show(bad_size, 5)}")

    if threshold is not None:
        masks = [(m > threshold).astype(np.int64) for m in masks]
    values = {s: set(np.unique(m).tolist()) for s, m in zip(stems, masks)}
    union = set().union(*values.values())
    if union <= {0, 255}:
        masks = [(m > 0).astype(np.int64) for m in masks]
        num_classes = 2
    elif union <= set(range(max_classes)):
        num_classes = max(2, max(union) + 1)
    else:
        allowed = set(range(max_classes)) | {0, 255}
        bad = [f"{msks[s].name} {sorted(v - allowed)[:5]}" for s, v in values.items() if not v <= allowed]
        if not bad:  # 0/255 masks beside values that only label masks have: name the odd ones out
            binary = [s for s, v in values.items() if v <= {0, 255}]
            if len(binary) * 2 >= len(values):  # mostly 0/255 masks: the others carry stray values
                bad = [f"{msks[s].name} {sorted(v - {0, 255})[:5]}" for s, v in values.items() if not v <= {0, 255}]
            else:  # mostly label masks: the 255s are the odd ones
                bad = [f"{msks[s].name} has 255" for s, v in values.items() if 255 in v]
        raise ValueError(
            f"unexpected mask values in {root / 'masks'}: {_show(bad, 5)}. Masks must be binary "
            f"(0/255 or 0/1) or class labels 0..{max_classes - 1}; for interpolated masks pass "
            "threshold=127 (in chapter 05: -p mask_threshold 127)."
        )

    channels = {1 if im.ndim == 2 else im.shape[2] for im in images}
    if len(channels) > 1:  # mixed grey and colour: make all RGB
        images = [np.repeat(im[..., None], 3, 2) if im.ndim == 2 else im for im in images]
    if size is not None:
        images, masks = _resize(images, masks, size)
    shapes = {im.shape[:2] for im in images}
    if len(shapes) > 1:
        by = [f"{imgs[s].name} {im.shape[1]}×{im.shape[0]}" for s, im in zip(stems, images)]
        raise ValueError(f"images in {root / 'images'} have different sizes ({_show(by, 5)}); pass size=(H, W) to resize them")

    n = len(stems)
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction)) if n >= 3 else 0
    n_val = max(1, round(n * val_fraction)) if n >= 3 else 0
    if n < 3:
        raise ValueError(f"{root} holds {n} image(s); at least 3 are needed for train/val/test")
    parts = np.split(order, [n - n_val - n_test, n - n_test])
    pick = lambda idx: _to_split([images[i] for i in idx], [masks[i] for i in idx], [stems[i] for i in idx])  # noqa: E731
    train = pick(parts[0])
    mean, std = _stats(train.images)
    return SegDataset(
        root.name, train, pick(parts[1]), HeldOut(pick(parts[2])), num_classes, mean, std,
        description=f"folder {root}: {n} images, {num_classes} classes",
    )


def _resize(images, masks, size):
    h, w = size
    out_i, out_m = [], []
    for im, mk in zip(images, masks):
        x = torch.from_numpy(im if im.ndim == 3 else im[..., None]).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        out_i.append(x[0].permute(1, 2, 0).round().clamp(0, 255).byte().squeeze(-1).numpy())
        m = torch.from_numpy(mk)[None, None].float()
        out_m.append(F.interpolate(m, size=(h, w), mode="nearest")[0, 0].long().numpy())
    return out_i, out_m


DATASETS: dict[str, Callable[..., SegDataset]] = {"dsb2018_96": load_dsb2018_96, "drive": load_drive}


def load_segmentation(name_or_path: str, root=None, **kwargs) -> SegDataset:
    """'dsb2018_96', 'drive', or a folder path (`<path>/images` + `<path>/masks`)."""
    if name_or_path in DATASETS:
        return DATASETS[name_or_path](root, **kwargs)
    if "/" in name_or_path or Path(name_or_path).expanduser().is_dir():
        return load_folder(name_or_path, **kwargs)
    raise ValueError(f"unknown dataset {name_or_path!r}; valid choices: {', '.join(map(repr, DATASETS))} or a folder path")

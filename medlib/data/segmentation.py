"""Segmentation data: DSB2018-96 nuclei, DRIVE retinal vessels, and any folder of
images + masks; batched joint augmentation, patch sampling and sliding-window inference.

Every split is held in memory as uint8 tensors (`SegSplit`): images (N, C, H, W), masks
(N, H, W) with class indices (0/1 when binary), optional field-of-view masks (N, H, W).
Batches are converted, normalised and augmented as tensor operations on the target
device (`SegBatches`). Explained in chapter 05.

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

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medlib import paths

IMAGE_EXTS = (".png", ".tif", ".tiff", ".gif", ".jpg", ".jpeg", ".bmp")
DSB_SPLIT = (470, 66, 134)  # train / val / test of the 670 images
DSB_SPLIT_SEED = 2018

# Published DRIVE results (test set, inside the FOV, against 1st_manual).
DRIVE_BASELINES = {
    "U-Net (Ronneberger 2015), as reported by Li et al. WACV 2020": {"auc": 0.9752},
    "IterNet (Li et al., WACV 2020)": {"auc": 0.9816, "f1": 0.8205},
    "retina-unet (orobix, GitHub)": {"auc": 0.9790},
}


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
    """train / val / test splits and the facts a chapter needs."""

    name: str
    train: SegSplit
    val: SegSplit
    test: SegSplit
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


# ----------------------------------------------------------------------------- file reading
def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 (H, W) or (H, W, 3); 16-bit and float images are rescaled."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode in ("RGBA", "P", "PA", "CMYK", "YCbCr", "LA", "HSV", "LAB"):
                im = im.convert("RGB")  # palette and other colour modes → RGB
            a = np.array(im)
    except Exception as err:  # PIL cannot read some TIFFs; tifffile can
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise ValueError(f"cannot read image {path}: {err}") from err
        import tifffile

        a = tifffile.imread(path)
    if a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        lo, hi = a.min(), a.max()
        a = ((a - lo) / (hi - lo if hi > lo else 1) * 255).round().astype(np.uint8)
    return a


def read_mask(path: Path) -> np.ndarray:
    """A mask file as raw integer values (H, W); a palette (P) GIF/PNG keeps its indices."""
    from PIL import Image

    with Image.open(path) as im:
        a = np.array(im if im.mode in ("L", "P", "1", "I", "I;16") else im.convert("L"))
    if a.ndim == 3:
        a = a[..., 0]
    return a.astype(np.int64)


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
        _to_split(images[b:], masks[b:], names[b:]),
        num_classes=2,
        mean=mean,
        std=std,
        description="DSB2018 nuclei (BBBC038), 96×96 RGB; split 470/66/134 by rng(2018)",
    )


# ----------------------------------------------------------------------------- DRIVE
def green_clahe(rgb: np.ndarray) -> np.ndarray:
    """The usual DRIVE pre-processing: green channel + CLAHE, uint8 (H, W)."""
    from skimage import exposure

    g = rgb[..., 1].astype(np.float64) / 255
    return (exposure.equalize_adapthist(g, clip_limit=0.01) * 255).round().astype(np.uint8)


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
        read("test", range(1, 21), "test", observer=True),
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
        if not bad:  # a mix of {0, 255} masks and label masks
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
        root.name, train, pick(parts[1]), pick(parts[2]), num_classes, mean, std,
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


# ----------------------------------------------------------------------------- augmentation
def augment(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    flips: bool = True,
    rot90: bool = True,
    affine: float = 0.0,
    elastic: float = 0.0,
    intensity: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random joint augmentation of a batch, one draw per image, all as tensor ops.

    x: float images (B, C, H, W); y: masks (B, H, W) (any dtype; resampled by nearest).
    flips: horizontal/vertical; rot90: multiples of 90° (square images only);
    affine: strength of a random rotation (±affine·30°) and scale (1 ± affine·0.15);
    elastic: displacement in pixels of a smooth random field (Simard 2003, coarse 8×8 noise
    upsampled); intensity: brightness/contrast jitter (± intensity) on standardised images.
    """
    b, _, h, w = x.shape
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device="cpu").to(dev)

    y = y.unsqueeze(1).float()  # (B, 1, H, W)
    if flips:
        fh, fv = rand(b) < 0.5, rand(b) < 0.5
        x = torch.where(fh.view(b, 1, 1, 1), x.flip(-1), x)
        y = torch.where(fh.view(b, 1, 1, 1), y.flip(-1), y)
        x = torch.where(fv.view(b, 1, 1, 1), x.flip(-2), x)
        y = torch.where(fv.view(b, 1, 1, 1), y.flip(-2), y)
    if rot90 and h == w:
        turn = rand(b) < 0.5  # transpose = rot90 combined with the flips above
        x = torch.where(turn.view(b, 1, 1, 1), x.transpose(-1, -2), x)
        y = torch.where(turn.view(b, 1, 1, 1), y.transpose(-1, -2), y)
    if affine > 0 or elastic > 0:
        theta = torch.zeros(b, 2, 3, device=dev)
        angle = (rand(b) * 2 - 1) * math.pi / 6 * affine
        scale = 1 + (rand(b) * 2 - 1) * 0.15 * affine
        theta[:, 0, 0], theta[:, 0, 1] = angle.cos() / scale, -angle.sin() / scale
        theta[:, 1, 0], theta[:, 1, 1] = angle.sin() / scale, angle.cos() / scale
        grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)  # (B, H, W, 2) in [-1, 1]
        if elastic > 0:
            noise = rand(b, 2, 8, 8) * 2 - 1  # coarse random displacements
            field = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False)
            scale_xy = torch.tensor([2 / w, 2 / h], device=dev).view(1, 2, 1, 1)
            grid = grid + (field * elastic * scale_xy).permute(0, 2, 3, 1)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        y = F.grid_sample(y, grid, mode="nearest", padding_mode="reflection", align_corners=False)
    if intensity > 0:
        gain = 1 + (rand(b, 1, 1, 1) * 2 - 1) * intensity
        shift = (rand(b, 1, 1, 1) * 2 - 1) * intensity
        x = x * gain + shift
    return x, y[:, 0]


# ----------------------------------------------------------------------------- patches
def sample_patches(
    images: torch.Tensor,
    masks: torch.Tensor,
    n: int,
    size: int,
    generator: torch.Generator | None = None,
    fov: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` random size×size crops: images (N, C, H, W) → (n, C, size, size), masks likewise.

    With `fov` (N, H, W), patch centres are drawn uniformly from field-of-view pixels, so
    no patch is wasted on the black background around a fundus image."""
    N, _, H, W = images.shape
    if size > H or size > W:
        raise ValueError(f"patch size {size} is larger than the images ({H}×{W})")
    if fov is None:
        idx = torch.randint(N, (n,), generator=generator)
        top = torch.randint(H - size + 1, (n,), generator=generator)
        left = torch.randint(W - size + 1, (n,), generator=generator)
    else:
        where = fov.flatten().nonzero()[:, 0]  # flat indices of FOV pixels over all images
        pick = where[torch.randint(len(where), (n,), generator=generator)]
        idx, rest = pick // (H * W), pick % (H * W)
        top = (rest // W - size // 2).clamp(0, H - size)
        left = (rest % W - size // 2).clamp(0, W - size)
    rows = top[:, None] + torch.arange(size)  # (n, size)
    cols = left[:, None] + torch.arange(size)
    xi = images[idx[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (n, size, size, C)
    yi = masks[idx[:, None, None], rows[:, :, None], cols[:, None, :]]  # (n, size, size)
    return xi.permute(0, 3, 1, 2), yi


class SegBatches:
    """A re-iterable of training batches (x, y) for `medlib.train.fit`.

    Each epoch draws `batches_per_epoch` batches: random patches (`patch_size`; centred in
    the FOV when the split has one) or whole images (patch_size=None, shuffled),
    normalised and augmented on `device`.
    x: (B, C, P, P) float; y: (B, 1, P, P) float for binary masks, (B, P, P) long otherwise.
    """

    def __init__(
        self,
        data: SegDataset,
        split: SegSplit,
        batch_size: int,
        *,
        patch_size: int | None = None,
        batches_per_epoch: int | None = None,
        device="cpu",
        seed: int = 0,
        aug: dict | None = None,
    ):
        self.data, self.split, self.batch_size = data, split, batch_size
        self.patch_size, self.device = patch_size, torch.device(device)
        n_full = math.ceil(len(split) / batch_size)
        self.batches_per_epoch = batches_per_epoch or n_full
        self.aug = {"flips": True, "rot90": True} if aug is None else aug
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _target(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, None].float() if self.data.num_classes == 2 else y.long()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self.generator
        order = torch.randperm(len(self.split), generator=g)
        for i in range(self.batches_per_epoch):
            if self.patch_size:
                xb, yb = sample_patches(
                    self.split.images, self.split.masks, self.batch_size, self.patch_size, g, self.split.fov
                )
            else:
                j = order[(torch.arange(self.batch_size) + i * self.batch_size) % len(order)]
                xb, yb = self.split.images[j], self.split.masks[j]
            x = self.data.normalize(xb.to(self.device))  # (B, C, P, P)
            x, y = augment(x, yb.to(self.device), generator=g, **self.aug)
            yield x, self._target(y.round())


# ----------------------------------------------------------------------------- inference
def predict_padded(model, x: torch.Tensor, multiple: int = 16) -> torch.Tensor:
    """Run a fully convolutional model on whole images: reflect-pad H, W up to a
    `multiple`, predict, crop back. x (B, C, H, W) float → logits (B, K, H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    xp = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
    return model(xp)[..., :h, :w]


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows covering [0, size): stride window·(1 - overlap), the last
    window aligned with the end (the layout MONAI uses)."""
    if size <= window:
        return [0]
    stride = max(int(window * (1 - overlap)), 1)
    n = math.ceil((size - window) / stride) + 1
    return sorted({min(i * stride, size - window) for i in range(n)})


@torch.no_grad()
def sliding_window(model, x: torch.Tensor, window: int, overlap: float = 0.25, batch_size: int = 8):
    """Sliding-window inference by hand: tile the image with overlapping windows, predict
    each, and average the logits where windows overlap. x (B, C, H, W) → (B, K, H, W).

    Images smaller than the window are zero-padded (as MONAI does). Matches
    `monai.inferers.sliding_window_inference(..., mode="constant")`.
    """
    b, _, h, w = x.shape
    ph, pw = max(window - h, 0), max(window - w, 0)
    if ph or pw:  # pad symmetrically like MONAI
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    H, W = x.shape[-2:]
    tiles = [(i, j) for i in window_starts(H, window, overlap) for j in window_starts(W, window, overlap)]
    out, count = None, torch.zeros(1, 1, H, W, device=x.device)
    for k in range(0, len(tiles), max(batch_size // b, 1)):
        chunk = tiles[k : k + max(batch_size // b, 1)]
        crops = torch.cat([x[..., i : i + window, j : j + window] for i, j in chunk])  # (len·B, C, w, w)
        pred = model(crops)
        if out is None:
            out = torch.zeros(b, pred.shape[1], H, W, device=x.device, dtype=pred.dtype)
        for t, (i, j) in enumerate(chunk):
            out[..., i : i + window, j : j + window] += pred[t * b : (t + 1) * b]
            count[..., i : i + window, j : j + window] += 1
    out = out / count
    return out[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]


@torch.no_grad()
def predict_probs(
    model,
    data: SegDataset,
    split: SegSplit,
    device,
    batch_size: int = 8,
    window: int | None = None,
    multiple: int = 16,
    tta: bool = False,
):
    """Foreground probabilities (N, H, W) for a split (binary), or class probabilities
    (N, K, H, W). Whole images are padded (`predict_padded`) unless `window` is given.
    `tta`: also predict the horizontally and vertically flipped images and average."""
    model.eval()
    predict = (lambda x: sliding_window(model, x, window)) if window else (lambda x: predict_padded(model, x, multiple))
    flips = [(), (-1,), (-2,)] if tta else [()]
    outs = []
    for k in range(0, len(split), batch_size):
        x = data.normalize(split.images[k : k + batch_size].to(device))  # (B, C, H, W)
        probs = 0
        for dims in flips:
            logits = predict(x.flip(dims) if dims else x)
            logits = logits.flip(dims) if dims else logits
            probs = probs + (torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else logits.softmax(1))
        outs.append((probs / len(flips)).float().cpu())
    return torch.cat(outs)

"""Reading image and mask files (PNG, TIFF, GIF, JPEG, BMP) into uint8 / integer arrays,
and DRIVE's usual pre-processing. Explained in chapter 05."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_EXTS = (".png", ".tif", ".tiff", ".gif", ".jpg", ".jpeg", ".bmp")


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


def green_clahe(rgb: np.ndarray) -> np.ndarray:
    """The usual DRIVE pre-processing: green channel + CLAHE, uint8 (H, W)."""
    from skimage import exposure

    g = rgb[..., 1].astype(np.float64) / 255
    return (exposure.equalize_adapthist(g, clip_limit=0.01) * 255).round().astype(np.uint8)

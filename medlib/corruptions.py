"""Image corruptions a scanner or a PACS produces, at five severities, written by hand after
ImageNet-C (Hendrycks & Dietterich, 2019) and MedMNIST-C (Di Salvo et al., 2024):
Gaussian noise (a low dose), blur (defocus, motion of the patient), reduced contrast
(exposure), JPEG compression (an archive), pixelation (a lower acquisition resolution).

`corrupt(images, kind, severity, seed)` takes and returns uint8 images (N, C, H, W), so the
corrupted images go through the same normalisation as clean ones. Severity 0 is the identity.
Explained in chapter 11.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("noise", "blur", "contrast", "jpeg", "pixelate")
# One parameter per kind and severity 1..5, on the [0, 1] intensity scale where it applies:
# noise σ; blur σ (px at 28 px, scaled with the image); contrast factor c (x → mean + c(x − mean));
# JPEG quality; pixelation factor (downsample to factor·size, nearest upsample).
LEVELS = {
    "noise": (0.04, 0.08, 0.12, 0.18, 0.26),
    "blur": (0.5, 0.75, 1.0, 1.5, 2.0),
    "contrast": (0.75, 0.6, 0.45, 0.3, 0.15),
    "jpeg": (40, 25, 15, 10, 5),
    "pixelate": (0.8, 0.65, 0.5, 0.4, 0.3),
}


def _float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"corruptions take uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    return images.float() / 255


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    r = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of float images (N, C, H, W), reflected at the border."""
    k = gaussian_kernel(sigma)
    r, c = len(k) // 2, x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode each image as JPEG at `quality` (Pillow's encoder)."""
    from PIL import Image

    out = []
    for im in images.permute(0, 2, 3, 1).numpy():
        pil = Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(quality))
        arr = np.asarray(Image.open(buf))
        out.append(arr[..., None] if arr.ndim == 2 else arr)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def corrupt(images: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """`images` (uint8, N, C, H, W) corrupted by `kind` at `severity` 0..5 (0: unchanged)."""
    if kind not in KINDS:
        raise ValueError(f"unknown corruption {kind!r}; valid: {', '.join(KINDS)}")
    if not 0 <= severity <= 5:
        raise ValueError(f"severity must be 0..5, got {severity}")
    x = _float(images)
    if severity == 0:
        return images.clone()
    level = LEVELS[kind][severity - 1]
    size = images.shape[-1]
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        return _uint8(x + level * torch.randn(x.shape, generator=g))
    if kind == "blur":
        return _uint8(blur(x, level * size / 28))
    if kind == "contrast":
        mean = x.mean((1, 2, 3), keepdim=True)
        return _uint8(mean + level * (x - mean))
    if kind == "jpeg":
        return jpeg(images, level)
    return pixelate(images, max(2, round(size * level)))


def pixelate(images: torch.Tensor, small: int) -> torch.Tensor:
    """Down to `small` px and back up, both with a box filter (Pillow's BOX, as ImageNet-C)."""
    from PIL import Image

    h, w = images.shape[-2:]
    out = []
    for im in images.permute(0, 2, 3, 1).numpy():
        pil = Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im)
        arr = np.asarray(pil.resize((small, small), Image.BOX).resize((w, h), Image.BOX))
        out.append(arr[..., None] if arr.ndim == 2 else arr)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()

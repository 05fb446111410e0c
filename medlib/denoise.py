"""Classical denoising filters, their parameters chosen on validation images, and the timed
scoring that puts them beside a learned denoiser (chapter 03).

Filters: Gaussian smoothing, median, bilateral, non-local means and total variation
(scikit-image / SciPy) and BM3D (the `bm3d` package; Dabov et al. 2007). Each has one
parameter, chosen per noise kind and level from `FILTERS[name].grid` by the mean PSNR on
validation images (`tune`). Non-local means and BM3D are given the noise standard deviation
(`sigma_ref`, from the noise model: an oracle the blind learned denoiser does not get).

BM3D runs with `profile.nf = 8`: the package's default (nf = 32, the FFT domain it uses to
handle coloured noise) costs about 0.6 s per 28 px image, whatever the image's size; with
nf = 8 it takes ~60 ms and scored the same or better (-0.01, +0.08, +0.13 dB at sigma = 15, 25,
50/255 on 30 PneumoniaMNIST validation images; nf = 0 was faster but 0.05-0.1 dB worse).
tests/test_autoencoder.py checks that it is no worse than the default.
Images: numpy float arrays (N, H, W) in [0, 1]; outputs are clipped to [0, 1].
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from medlib.metrics.image import psnr, ssim


@dataclass(frozen=True)
class Filter:
    apply: Callable[[np.ndarray, float, float], np.ndarray]  # (image, parameter, sigma_ref) -> image
    grid: tuple  # candidate parameters, chosen on validation
    parameter: str  # what the parameter is, for tables


def _gaussian(img, s, _sigma):
    return ndimage.gaussian_filter(img, s, mode="reflect")


def _median(img, k, _sigma):
    return ndimage.median_filter(img, size=int(k), mode="reflect")


def _bilateral(img, c, _sigma):
    from skimage.restoration import denoise_bilateral

    return denoise_bilateral(img, sigma_color=c, sigma_spatial=1.5)


def _nlm(img, m, sigma):
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(img, h=m * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)


def _tv(img, w, _sigma):
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(img, weight=w)


def bm3d_profile():
    """BM3D's default profile with nf = 8 (see the module docstring)."""
    from bm3d import BM3DProfile

    p = BM3DProfile()
    p.nf = 8
    return p


def _bm3d(img, m, sigma, profile=None):
    import bm3d

    return bm3d.bm3d(img, m * sigma, profile=profile or bm3d_profile())


FILTERS: dict[str, Filter] = {
    "gaussian": Filter(_gaussian, (0.5, 0.75, 1.0, 1.5, 2.0), "sigma (px)"),
    "median": Filter(_median, (3, 5), "window (px)"),
    "bilateral": Filter(_bilateral, (0.05, 0.1, 0.2, 0.4), "sigma_color"),
    "non-local means": Filter(_nlm, (0.6, 0.8, 1.0, 1.25), "h / sigma"),
    "total variation": Filter(_tv, (0.03, 0.06, 0.1, 0.15, 0.25), "weight"),
    "BM3D": Filter(_bm3d, (0.8, 1.0, 1.25), "sigma_psd / sigma"),
}


def apply(name: str, noisy: np.ndarray, value: float, sigma_ref: float) -> np.ndarray:
    """Filter every image of (N, H, W) `noisy`; (N, H, W) in [0, 1]."""
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; valid filters: {', '.join(FILTERS)}")
    f = FILTERS[name].apply
    return np.clip(np.stack([f(np.asarray(im, dtype=np.float64), value, sigma_ref) for im in noisy]), 0, 1)


def tune(clean: np.ndarray, noisy: np.ndarray, sigma_ref: float, names=None) -> dict[str, dict]:
    """For each filter, the grid value with the best mean PSNR on these (validation) images:
    {name: {"value": v, "psnr": {v: mean PSNR for every candidate}}}."""
    out = {}
    for name in names or FILTERS:
        scores = {v: float(psnr(clean, apply(name, noisy, v, sigma_ref)).mean()) for v in FILTERS[name].grid}
        out[name] = {"value": max(scores, key=scores.get), "psnr": scores}
    return out


def score(clean: np.ndarray, estimate) -> dict[str, np.ndarray]:
    """Per-image PSNR and SSIM (data range 1) of an estimate (N, H, W)."""
    est = torch.as_tensor(np.asarray(estimate, dtype=np.float64))
    return {"psnr": psnr(clean, est).numpy(), "ssim": ssim(clean, est).numpy()}


def run_filters(clean: np.ndarray, noisy: np.ndarray, chosen: dict[str, dict], sigma_ref: float) -> dict[str, dict]:
    """Every tuned filter on these images: per-image PSNR/SSIM, the estimates, and the seconds per image."""
    out = {}
    for name, c in chosen.items():
        t0 = time.perf_counter()
        est = apply(name, noisy, c["value"], sigma_ref)
        out[name] = {**score(clean, est), "estimate": est, "seconds_per_image": (time.perf_counter() - t0) / len(noisy)}
    return out

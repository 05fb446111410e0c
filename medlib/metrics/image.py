"""Image-quality metrics by hand: MSE, MAE, PSNR and SSIM, per image.

Conventions: `x` is the reference (the clean image), `y` the estimate (e.g. a denoised
image). Both are torch tensors or numpy arrays shaped (H, W), (N, H, W) or (N, 1, H, W)
and of the same shape; every function computes in float64 and returns a tensor (N,), one
value per image. `data_range` is the span of possible pixel values (1 for images in
[0, 1], 255 for 8-bit images); PSNR and SSIM depend on it.
Written by hand in PyTorch and tested against skimage.metrics (mean_squared_error,
peak_signal_noise_ratio, structural_similarity). Explained in chapter 03.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medlib.metrics.common import as_nhw


def _as_nhw(x) -> torch.Tensor:
    """(H, W), (N, H, W) or (N, 1, H, W) -> (N, H, W) float64."""
    return as_nhw(x).double()


def _pair(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    if tuple(torch.as_tensor(x).shape) != tuple(torch.as_tensor(y).shape):
        raise ValueError(f"x {tuple(torch.as_tensor(x).shape)} and y {tuple(torch.as_tensor(y).shape)} differ in shape")
    return _as_nhw(x), _as_nhw(y)


def mse(x, y) -> torch.Tensor:
    """Mean squared error per image, (N,)."""
    x, y = _pair(x, y)
    return (x - y).pow(2).flatten(1).mean(1)


def mae(x, y) -> torch.Tensor:
    """Mean absolute error per image, (N,)."""
    x, y = _pair(x, y)
    return (x - y).abs().flatten(1).mean(1)


def psnr(x, y, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: 10 log10(data_range² / MSE), (N,).

    +inf for identical images (MSE = 0), as skimage returns.
    """
    m = mse(x, y)  # (N,)
    ratio = torch.where(m > 0, data_range**2 / m.clamp(min=1e-300), torch.full_like(m, float("inf")))
    return 10 * torch.log10(ratio)


def ssim(x, y, data_range: float = 1.0, win_size: int = 7) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image, (N,).

    The defaults of skimage.metrics.structural_similarity: local means, variances and
    covariance in a uniform win_size × win_size window, sample (co)variances (× NP/(NP−1),
    NP = win_size²), K1 = 0.01, K2 = 0.03, and the mean of the SSIM map over the windows
    that lie inside the image (skimage filters the whole image, then crops (win_size−1)/2
    pixels on each side: the same values).
    """
    x, y = _pair(x, y)
    if win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"win_size must be odd and positive, got {win_size}")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"images {tuple(x.shape[-2:])} are smaller than the window ({win_size})")
    x, y = x[:, None], y[:, None]  # (N, 1, H, W)
    mean = lambda t: F.avg_pool2d(t, win_size, stride=1)  # noqa: E731  (N, 1, H-2p, W-2p)
    ux, uy = mean(x), mean(y)
    n_p = win_size**2
    cov_norm = n_p / (n_p - 1)  # sample covariance
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))  # SSIM map
    return s.flatten(1).mean(1)

"""Noise models that match imaging modalities, for chapter 03 (denoising).

Images are float tensors in [0, 1] of any shape; a `torch.Generator` makes the draws
reproducible (it must live on the images' device). Each kind has one parameter, its
`level`, and three standard levels in `NOISE_LEVELS` (low, middle, high noise; the middle
one is the chapter's headline level):

- gaussian: y = x + σ n, n ~ N(0, 1); level σ. No clipping, so y may leave [0, 1].
- poisson: y = Poisson(peak · x) / peak; level peak, the photon count of a white pixel
  (X-ray, CT and nuclear imaging count photons). Var[y] = x / peak.
- rician: y = sqrt((x + σ n1)² + (σ n2)²); level σ, the std of the Gaussian noise on the
  real and imaginary channels of an MR image whose magnitude is shown. E[y²] = x² + 2σ².
- speckle: y = x · g, g ~ Gamma(shape=L, scale=1/L); level L, the number of looks
  (ultrasound). E[y] = x, Var[y] = x² / L.
"""

from __future__ import annotations

import math

import torch

NOISE_LEVELS: dict[str, tuple] = {
    "gaussian": (15 / 255, 25 / 255, 50 / 255),  # σ
    "poisson": (150.0, 50.0, 12.0),  # peak
    "rician": (15 / 255, 25 / 255, 50 / 255),  # σ
    "speckle": (64.0, 25.0, 6.0),  # looks L
}
NOISE_KINDS = tuple(NOISE_LEVELS)
NOISE_DESCRIPTIONS = {
    "gaussian": "additive white Gaussian noise: y = x + σ·n, n ~ N(0, 1)",
    "poisson": "photon counting (X-ray): y = Poisson(peak·x) / peak",
    "rician": "MR magnitude: y = sqrt((x + σ·n1)² + (σ·n2)²), n1, n2 ~ N(0, 1)",
    "speckle": "ultrasound speckle: y = x·g, g ~ Gamma(shape=L, scale=1/L), mean 1, variance 1/L",
}
_STD_KINDS = ("gaussian", "rician")  # level = σ; for the others, noise std ∝ 1/sqrt(level)


def _check_kind(kind: str) -> None:
    if kind not in NOISE_LEVELS:
        raise ValueError(f"unknown noise kind {kind!r}; valid kinds: {', '.join(NOISE_KINDS)}")


def _standard_gamma(shape: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gamma(shape, scale=1) draws, one per element of `shape` (> 0), by Marsaglia and Tsang
    (2000): rejection sampling from a transformed normal; for shape < 1, Gamma(shape + 1)
    times U^(1/shape). torch.distributions.Gamma takes no generator, hence this."""
    a = shape.flatten()
    boost = a < 1
    a1 = torch.where(boost, a + 1, a)
    d = a1 - 1 / 3
    c = 1 / torch.sqrt(9 * d)
    out = torch.empty_like(a1)
    todo = torch.arange(a.numel(), device=a.device)  # indices still to accept
    opts = {"generator": generator, "dtype": a.dtype, "device": a.device}
    while todo.numel():
        z = torch.randn(todo.numel(), **opts)
        u = torch.rand(todo.numel(), **opts)
        dt, ct = d[todo], c[todo]
        v = (1 + ct * z) ** 3
        logv = torch.log(v.clamp(min=torch.finfo(a.dtype).tiny))
        ok = (v > 0) & (torch.log(u) < 0.5 * z**2 + dt - dt * v + dt * logv)
        out[todo[ok]] = (dt * v)[ok]
        todo = todo[~ok]
    if boost.any():
        u = torch.rand(a.numel(), **opts)
        out = torch.where(boost, out * u ** (1 / a), out)
    return out.view(shape.shape)


def _level_tensor(x: torch.Tensor, level) -> torch.Tensor:
    """The level as a tensor that broadcasts against x: a scalar, or (N,) -> (N, 1, ...)."""
    lvl = torch.as_tensor(level, dtype=x.dtype, device=x.device)
    if lvl.ndim > 1 or (lvl.ndim == 1 and (x.ndim == 0 or lvl.numel() != x.shape[0])):
        raise ValueError(
            f"level must be a number or a tensor (N,) with one level per image of x {tuple(x.shape)}, "
            f"got shape {tuple(lvl.shape)}"
        )
    if not bool(torch.all(lvl > 0)):  # also catches NaN
        raise ValueError(f"noise level must be positive, got {level}")
    if lvl.ndim == 1:
        lvl = lvl.view(-1, *([1] * (x.ndim - 1)))  # (N, 1, ..., 1)
    return lvl


def add_noise(x: torch.Tensor, kind: str, level, generator: torch.Generator | None = None) -> torch.Tensor:
    """x plus noise of one kind (see the module docstring), same shape as x.

    `level` is a number, or a tensor (N,) with one level per image of a batch x (N, ...).
    The result has x's dtype if it is floating point, else float32 (the default dtype).
    """
    _check_kind(kind)
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    lvl = _level_tensor(x, level)
    g = generator
    randn = lambda: torch.randn(x.shape, generator=g, dtype=x.dtype, device=x.device)  # noqa: E731
    if kind == "gaussian":
        return x + lvl * randn()
    if kind == "poisson":
        rate = (lvl * x).clamp(min=0)  # expected photon count per pixel
        return torch.poisson(rate, generator=g) / lvl
    if kind == "rician":
        real, imag = x + lvl * randn(), lvl * randn()
        return torch.sqrt(real**2 + imag**2)
    # speckle: multiplicative Gamma noise with mean 1 and variance 1/L
    looks = lvl.expand(x.shape)
    return x * _standard_gamma(looks, g) / looks


def level_name(kind: str, level: float) -> str:
    """A short label for tables and figures: 'σ=25/255', 'peak 50', 'L=25'."""
    _check_kind(kind)
    level = float(level)
    if kind in _STD_KINDS:
        s = level * 255
        return f"σ={round(s)}/255" if abs(s - round(s)) < 1e-6 else f"σ={s:.3g}/255"
    if kind == "poisson":
        return f"peak {level:.3g}"
    return f"L={level:.3g}"


def noise_std(kind: str, level: float, x: float = 0.5) -> float:
    """Standard deviation of the noise at a pixel of value x.

    gaussian: σ; poisson: sqrt(x / peak); speckle: x / sqrt(L). rician: σ, an
    approximation that holds where x ≫ σ (at x = 0 the noise is Rayleigh, with std
    σ sqrt(2 − π/2) ≈ 0.66 σ, and its mean is biased upwards by σ sqrt(π/2)).
    """
    _check_kind(kind)
    level = float(level)
    if level <= 0:
        raise ValueError(f"noise level must be positive, got {level}")
    if kind in _STD_KINDS:
        return level
    if kind == "poisson":
        return math.sqrt(x / level)
    return x / math.sqrt(level)


def sample_level(kind: str, n: int, generator: torch.Generator | None = None, low=None, high=None) -> torch.Tensor:
    """n levels drawn at random between two levels, a float64 tensor (n,), e.g. to train one
    blind denoiser over a range of noise.

    `low` and `high` are the ends of the range as levels (either order; by default the
    kind's lowest- and highest-noise levels in NOISE_LEVELS). For gaussian and rician the
    levels are uniform in σ; for poisson and speckle uniform in 1/sqrt(level), which is
    proportional to the noise std, so weak and strong noise are drawn equally often.
    """
    _check_kind(kind)
    lo = NOISE_LEVELS[kind][0] if low is None else float(low)
    hi = NOISE_LEVELS[kind][-1] if high is None else float(high)
    lo, hi = min(lo, hi), max(lo, hi)
    if lo <= 0:
        raise ValueError(f"noise levels must be positive, got {low}, {high}")
    u = torch.rand(n, generator=generator, dtype=torch.float64)  # (n,)
    if kind in _STD_KINDS:
        levels = lo + u * (hi - lo)
    else:
        s_lo, s_hi = hi**-0.5, lo**-0.5  # std scale of the weakest and strongest noise
        levels = (s_lo + u * (s_hi - s_lo)) ** -2
    return levels.clamp(lo, hi)

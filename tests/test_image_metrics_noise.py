"""Hand-written image-quality metrics agree with scikit-image; noise models have the
statistics they claim (tolerances from the sample size: 5 standard errors)."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from medlib.data import noise as N
from medlib.metrics import image as M

# ---------------------------------------------------------------- metrics vs skimage


def smooth(n, size, seed):
    """Smooth images in [0, 1] (upsampled random coarse grid), (N, size, size) float64."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 4, 4, generator=g, dtype=torch.float64)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[:, 0].clamp(0, 1)


def image_pairs():
    """(x, y, data_range): random, and smooth image + noise, at 28² and 64², ranges 1 and 255."""
    rng = np.random.default_rng(0)
    out = []
    for size in (28, 64):
        out.append((rng.random((3, size, size)), rng.random((3, size, size)), 1.0))
        x = smooth(3, size, seed=size).numpy()
        y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
        out.append((x, y, 1.0))
        out.append((np.round(x * 255), np.round(y * 255), 255.0))
    return out


@pytest.mark.parametrize("x, y, data_range", image_pairs())
def test_metrics_match_skimage_per_image(x, y, data_range):
    ref = {
        "mse": [mean_squared_error(a, b) for a, b in zip(x, y)],
        "mae": [np.abs(a - b).mean() for a, b in zip(x, y)],
        "psnr": [peak_signal_noise_ratio(a, b, data_range=data_range) for a, b in zip(x, y)],
        "ssim": [structural_similarity(a, b, data_range=data_range, win_size=7) for a, b in zip(x, y)],
    }
    ours = {
        "mse": M.mse(x, y),
        "mae": M.mae(x, y),
        "psnr": M.psnr(x, y, data_range=data_range),
        "ssim": M.ssim(x, y, data_range=data_range),
    }
    for k in ref:
        assert ours[k].dtype == torch.float64 and ours[k].shape == (len(x),)
        np.testing.assert_allclose(ours[k].numpy(), ref[k], rtol=0, atol=1e-4, err_msg=k)
    # the images of a batch get different values (no accidental pooling over the batch)
    assert len(set(np.round(ours["ssim"].numpy(), 6))) == len(x)


def test_metrics_accept_shapes_and_tensors():
    x, y = smooth(2, 28, 1), smooth(2, 28, 2)
    ref = M.ssim(x, y)
    assert torch.allclose(M.ssim(x[:, None].float(), y[:, None].float()), ref, atol=1e-6)  # (N, 1, H, W)
    assert torch.allclose(M.ssim(x[0], y[0]), ref[:1])  # (H, W) -> (1,)
    assert torch.allclose(M.psnr(x.numpy(), y.numpy()), M.psnr(x, y))


def test_identical_images():
    x = smooth(2, 28, 3)
    assert torch.isinf(M.psnr(x, x)).all() and (M.psnr(x, x) > 0).all()
    assert torch.allclose(M.ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert torch.equal(M.mse(x, x), torch.zeros(2, dtype=torch.float64))
    assert peak_signal_noise_ratio(x[0].numpy(), x[0].numpy() + 1e-3) == pytest.approx(float(M.psnr(x[0], x[0] + 1e-3)[0]))


@pytest.mark.parametrize("f", [M.mse, M.mae, M.psnr, M.ssim])
def test_bad_shapes_raise(f):
    with pytest.raises(ValueError, match="differ in shape"):
        f(torch.zeros(2, 28, 28), torch.zeros(2, 28, 27))
    with pytest.raises(ValueError, match="2D images"):
        f(torch.zeros(2, 3, 28, 28), torch.zeros(2, 3, 28, 28))  # 3 channels per item
    with pytest.raises(ValueError, match="2D images"):
        f(torch.zeros(28), torch.zeros(28))


# ---------------------------------------------------------------- noise statistics

PIXELS = 200_000


def z_score(v: torch.Tensor, expected: float) -> float:
    """(sample mean of v − expected) / its standard error; v are independent draws."""
    v = v.double().flatten()
    return float((v.mean() - expected) / (v.std() / math.sqrt(v.numel())))


def assert_mean(v, expected, wrong=None):
    """E[v] = expected within 5 standard errors, and (power check) `wrong` is rejected."""
    z = z_score(v, expected)
    assert abs(z) < 5, f"mean {float(v.double().mean()):.6g} vs expected {expected:.6g} (z = {z:.1f})"
    if wrong is not None:
        assert abs(z_score(v, wrong)) > 5, "the test could not tell the wrong value apart"


def constant(value, dtype=torch.float64):
    return torch.full((PIXELS,), value, dtype=dtype)


def ramp(lo=0.05, hi=1.0):
    return torch.linspace(lo, hi, PIXELS, dtype=torch.float64).view(400, 500)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("sigma", N.NOISE_LEVELS["gaussian"])
def test_gaussian_statistics(sigma):
    x = ramp()
    y = N.add_noise(x, "gaussian", sigma, gen())
    r = y - x
    assert_mean(r, 0.0)
    assert_mean(r**2, sigma**2, wrong=(1.1 * sigma) ** 2)
    assert (y < 0).any() or (y > 1).any()  # no clipping


@pytest.mark.parametrize("peak", N.NOISE_LEVELS["poisson"])
def test_poisson_statistics(peak):
    x = ramp(0.0, 1.0)
    y = N.add_noise(x, "poisson", peak, gen(1))
    r = y - x
    assert_mean(r, 0.0)  # E[y] = x
    assert_mean(r**2, float(x.mean()) / peak, wrong=float(x.mean()) / (1.1 * peak))  # Var[y] = x / peak
    assert (y >= 0).all()
    assert (y[x == 0] == 0).all()


def test_poisson_support_is_counts_over_peak():
    peak = 50.0
    y = N.add_noise(constant(0.37, torch.float32), "poisson", peak, gen(2))
    assert y.dtype == torch.float32
    k = y.double() * peak
    assert (k - k.round()).abs().max() < 1e-3  # whole photon counts
    assert len(k.round().unique()) > 10


@pytest.mark.parametrize("value", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("sigma", [25 / 255, 50 / 255])
def test_rician_statistics(value, sigma):
    x = constant(value)
    y = N.add_noise(x, "rician", sigma, gen(3))
    assert (y >= 0).all()
    assert_mean(y**2, value**2 + 2 * sigma**2, wrong=value**2 + 2 * (1.1 * sigma) ** 2)
    if value == 0:  # Rayleigh: E[y] = σ sqrt(π/2), the bias a denoiser must remove
        assert_mean(y, sigma * math.sqrt(math.pi / 2))


@pytest.mark.parametrize("looks", [*N.NOISE_LEVELS["speckle"], 6.5, 0.7])
def test_speckle_statistics(looks):
    x = ramp()
    y = N.add_noise(x, "speckle", looks, gen(4))
    r = y - x
    assert (y >= 0).all()
    assert_mean(r, 0.0)  # E[y] = x
    assert_mean(r**2, float((x**2).mean()) / looks, wrong=float((x**2).mean()) / (1.1 * looks))
    # the Gamma draws themselves: E[g] = 1, Var[g] = 1/L
    g = N.add_noise(constant(1.0), "speckle", looks, gen(5))
    assert_mean(g, 1.0)
    assert_mean((g - 1) ** 2, 1 / looks, wrong=1 / (1.1 * looks))


@pytest.mark.parametrize("kind", N.NOISE_KINDS)
def test_same_seed_same_draws(kind):
    x = ramp()[:50]
    level = N.NOISE_LEVELS[kind][1]
    a = N.add_noise(x, kind, level, gen(7))
    b = N.add_noise(x, kind, level, gen(7))
    c = N.add_noise(x, kind, level, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype


@pytest.mark.parametrize("kind", N.NOISE_KINDS)
def test_per_image_levels(kind):
    lo, mid, hi = N.NOISE_LEVELS[kind]
    x = torch.full((3, 1, 100, 100), 0.5)  # (N, 1, H, W)
    levels = torch.tensor([lo, mid, hi])
    y = N.add_noise(x, kind, levels, gen(9))
    assert y.shape == x.shape
    for i, level in enumerate(levels.tolist()):
        std = float((y[i] - 0.5).pow(2).mean().sqrt())  # rician: includes its small bias
        assert std == pytest.approx(N.noise_std(kind, level, 0.5), rel=0.1)
    # a tensor of equal levels gives the same draws as the number
    same = N.add_noise(x, kind, torch.full((3,), mid), gen(9))
    assert torch.allclose(same, N.add_noise(x, kind, mid, gen(9)), atol=1e-6)
    with pytest.raises(ValueError, match="one level per image"):
        N.add_noise(x, kind, torch.tensor([lo, hi]))


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan")])
def test_bad_level_raises(bad):
    with pytest.raises(ValueError, match="positive"):
        N.add_noise(torch.rand(4, 4), "gaussian", bad)
    with pytest.raises(ValueError, match="positive"):
        N.add_noise(torch.rand(2, 4, 4), "speckle", torch.tensor([1.0, bad]))


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ValueError) as e:
        N.add_noise(torch.rand(4, 4), "salt-and-pepper", 0.1)
    for kind in N.NOISE_KINDS:
        assert kind in str(e.value)
    with pytest.raises(ValueError, match="gaussian"):
        N.sample_level("speckles", 3, gen())


def test_levels_descriptions_and_names():
    assert N.NOISE_KINDS == ("gaussian", "poisson", "rician", "speckle")
    assert set(N.NOISE_DESCRIPTIONS) == set(N.NOISE_KINDS)
    for kind in N.NOISE_KINDS:  # low, middle, high noise: the std grows
        stds = [N.noise_std(kind, level) for level in N.NOISE_LEVELS[kind]]
        assert stds == sorted(stds) and len(set(stds)) == 3
    names = [N.level_name(k, N.NOISE_LEVELS[k][1]) for k in N.NOISE_KINDS]
    assert names == ["σ=25/255", "peak 50", "σ=25/255", "L=25"]
    assert N.level_name("speckle", 6.5) == "L=6.5"
    assert N.noise_std("poisson", 50.0, 0.5) == pytest.approx(0.1)
    assert N.noise_std("speckle", 25.0, 0.5) == pytest.approx(0.1)


@pytest.mark.parametrize("kind", N.NOISE_KINDS)
def test_sample_level_in_range(kind):
    levels = N.sample_level(kind, 20_000, gen(10))
    lo, hi = sorted([N.NOISE_LEVELS[kind][0], N.NOISE_LEVELS[kind][-1]])
    assert levels.shape == (20_000,) and levels.is_floating_point()
    assert (levels >= lo).all() and (levels <= hi).all()
    assert levels.min() < lo + 0.05 * (hi - lo) and levels.max() > hi - 0.05 * (hi - lo)
    # uniform in the noise std (σ, or 1/sqrt(level)): its mean is the midpoint
    s = levels if kind in ("gaussian", "rician") else levels**-0.5
    s_lo, s_hi = (lo, hi) if kind in ("gaussian", "rician") else (hi**-0.5, lo**-0.5)
    assert_mean(s, (s_lo + s_hi) / 2)
    assert torch.equal(levels, N.sample_level(kind, 20_000, gen(10)))
    custom = N.sample_level(kind, 100, gen(11), low=N.NOISE_LEVELS[kind][1], high=N.NOISE_LEVELS[kind][2])
    assert (custom >= min(N.NOISE_LEVELS[kind][1:])).all() and (custom <= max(N.NOISE_LEVELS[kind][1:])).all()

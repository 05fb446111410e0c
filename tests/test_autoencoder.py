"""Chapter 03: the autoencoder models, the VAE's terms, the batch sources and training steps,
the classical filters (BM3D's fast profile against its default), and the anomaly path's rule
that no abnormal image reaches training or model selection."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medlib import anomaly
from medlib import denoise as classical
from medlib.data.heldout import TestSetSealed
from medlib.data.medmnist import Split
from medlib.data.noise import NOISE_LEVELS
from medlib.data.registry import info as dataset_info
from medlib.data.synthetic import synthetic
from medlib.metrics.image import psnr
from medlib.models.autoencoder import (
    VAE,
    ConvAutoencoder,
    DenoisingUNet,
    RotationNet,
    geometric,
    kl_normal,
    negative_elbo,
    reparameterize,
)
from medlib.recipes import autoencoders as rec


@pytest.mark.parametrize("size", [28, 64])
def test_models_keep_the_image_shape(size):
    torch.manual_seed(0)
    x = torch.rand(3, 1, size, size)
    ae = ConvAutoencoder(1, 8, size)
    assert ae.encode(x).shape == (3, 8) and ae(x).shape == x.shape
    assert ((ae(x) >= 0) & (ae(x) <= 1)).all()  # sigmoid output
    vae = VAE(1, 4, size)
    recon, mu, logvar = vae(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (3, 4)
    assert DenoisingUNet()(x).shape == x.shape
    assert RotationNet()(x).shape == (3, 8) and RotationNet().features(x).shape == (3, 64)


def test_bad_sizes_say_what_to_do():
    with pytest.raises(ValueError, match="cannot be halved"):
        ConvAutoencoder(1, 8, 36)
    with pytest.raises(ValueError, match="divisible by 4"):
        DenoisingUNet()(torch.rand(1, 1, 30, 30))


def test_kl_closed_form_equals_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(kl_normal(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1), atol=1e-10)
    assert torch.allclose(kl_normal(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))  # q = p


def test_reparameterisation_passes_gradients_to_mu_and_sigma():
    mu = torch.tensor([[0.5, -1.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, 0.4]], requires_grad=True)
    eps = torch.tensor([[1.5, -2.0]])
    z = reparameterize(mu, logvar, eps)
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))  # dz/dmu = 1
    assert torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)  # dz/dlogvar


def test_negative_elbo_is_reconstruction_plus_beta_kl():
    torch.manual_seed(0)
    x, recon = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    total, rec_term, kl = negative_elbo(x, recon, mu, logvar, beta=2.0, sigma=0.1)
    assert torch.allclose(rec_term, ((x - recon) ** 2).flatten(1).sum(1) / 0.02)
    assert torch.allclose(total, rec_term + 2.0 * kl)


def test_geometric_transforms_are_eight_distinct_maps():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    outs = [geometric(x, k) for k in range(8)]
    assert len({tuple(o.flatten().tolist()) for o in outs}) == 8
    xs, ks = rec.rotations(x.repeat(3, 1, 1, 1))
    assert xs.shape == (24, 1, 4, 4) and ks.tolist() == [k for k in range(8) for _ in range(3)]


def test_pair_batches_are_reproducible_and_resume_exactly():
    images = torch.randint(0, 256, (100, 1, 8, 8), dtype=torch.uint8)
    a, b = rec.PairBatches(images, 32, seed=3), rec.PairBatches(images, 32, seed=3)
    assert len(a) == 3
    first = [x for x, _ in a]
    assert all(torch.equal(p, q) for p, q in zip(first, [x for x, _ in b]))
    state = a.state_dict()
    nxt = [x for x, _ in a]
    a.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(nxt, [x for x, _ in a]))
    x, y = next(iter(rec.PairBatches(images, 32, seed=0, pair=rec.noisy_pairs("gaussian"))))
    assert x.shape == y.shape and not torch.equal(x, y) and y.min() >= 0 and y.max() <= 1
    with pytest.raises(TypeError, match="uint8"):
        rec.PairBatches(images.float())


def _smooth_images(n: int, seed: int) -> torch.Tensor:
    """uint8 (n, 1, 28, 28) smooth random images: structure a denoiser can tell from white noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 7, 7, generator=g)
    return (torch.nn.functional.interpolate(coarse, size=28, mode="bicubic").clamp(0, 1) * 255).to(torch.uint8)


def test_denoiser_and_autoencoder_learn_on_smooth_images():
    train, val = _smooth_images(384, 0), _smooth_images(64, 1)
    torch.manual_seed(0)
    den = DenoisingUNet()
    noisy = rec.fixed_noisy(val, "gaussian", 25 / 255, 0)
    before = psnr(rec.to_unit(val), noisy.clamp(0, 1)).mean()
    h = rec.train_denoiser(den, train, val, "gaussian", 25 / 255, epochs=3, device="cpu", lr=3e-3)
    assert h.select_by == "psnr" and h.best_score > float(before) + 2
    ae = ConvAutoencoder(1, 8, 28, width=8)
    h = rec.train_autoencoder(ae, train, val, epochs=3, device="cpu")
    assert h.epochs[-1]["train_loss"] < h.epochs[0]["train_loss"]


def test_tune_picks_the_best_grid_value_on_the_given_images():
    rng = np.random.default_rng(0)
    clean = np.clip(rng.normal(0.5, 0.05, (3, 28, 28)), 0, 1)
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    out = classical.tune(clean, noisy, 0.1, names=["gaussian", "total variation"])
    for name, c in out.items():
        assert set(c["psnr"]) == set(classical.FILTERS[name].grid)
        assert c["psnr"][c["value"]] == max(c["psnr"].values())
    with pytest.raises(ValueError, match="valid filters"):
        classical.apply("wiener", noisy, 1.0, 0.1)


def test_bm3d_fast_profile_matches_the_default(data_root):
    """medlib.denoise runs BM3D with nf = 8 (10x faster on 28 px images): no worse than the default."""
    import bm3d

    from medlib.data.medmnist import load

    clean = load("pneumoniamnist", root=data_root).val.images[:6, 0].numpy() / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)
    fast = classical.apply("BM3D", noisy, 1.0, 25 / 255)
    default = np.clip(np.stack([bm3d.bm3d(y, 25 / 255) for y in noisy]), 0, 1)
    gap = float(psnr(clean, fast).mean() - psnr(clean, default).mean())
    assert gap > -0.03, gap
    assert float(psnr(clean, fast).mean()) > float(psnr(clean, np.clip(noisy, 0, 1)).mean()) + 4


# ----------------------------------------------------------------------------- anomaly path
def test_normal_label_is_found_by_name():
    assert anomaly.normal_label(dataset_info("pneumoniamnist")) == 0
    assert anomaly.normal_label(dataset_info("breastmnist")) == 1  # "normal, benign"
    with pytest.raises(ValueError, match="no single 'normal' class"):
        anomaly.normal_label(dataset_info("bloodmnist"))


def _marked_split(name: str, n: int = 96) -> Split:
    """Normal images (class 0) in [0, 200]; abnormal ones (class 1) are all 255 - detectable anywhere."""
    g = torch.Generator().manual_seed(len(name))
    y = (torch.arange(n) % 3 == 0).long()[:, None]  # a third abnormal
    x = torch.randint(0, 201, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    x[y[:, 0] == 1] = 255
    info = dataclasses.replace(dataset_info("pneumoniamnist"), n_samples={"train": n, "val": n, "test": n})
    return Split(x, y, info, name)


class Spy:
    """Records whether any image given to a model's forward is an abnormal (all-ones) one."""

    def __init__(self, *models):
        self.calls, self.abnormal = 0, 0
        for m in models:  # the first module that sees the image (VAE scoring calls encode(), not forward())
            (m.body if isinstance(m, RotationNet) else m.encoder).register_forward_pre_hook(self)

    def __call__(self, module, args):
        x = args[0]
        self.calls += 1
        flat = x.detach().flatten(1)
        self.abnormal += int((flat.min(1).values > 0.999).sum())  # all-ones: [0, 1] and [-1, 1] inputs alike


def test_no_abnormal_image_reaches_training_or_selection_in_the_anomaly_path():
    train, val = _marked_split("train"), _marked_split("val")
    normal_train, normal_val = anomaly.normal_images(train, 0), anomaly.normal_images(val, 0)
    assert len(normal_train) == 64 and (normal_train <= 200).all()
    torch.manual_seed(0)
    models = {"ae": ConvAutoencoder(1, 4, 28, width=8), "vae": VAE(1, 4, 28, width=8), "rot": RotationNet(1, (4, 8, 8))}
    spy = Spy(*models.values())
    rec.train_autoencoder(models["ae"], normal_train, normal_val, epochs=2, device="cpu")
    rec.train_vae(models["vae"], normal_train, normal_val, epochs=2, device="cpu")
    rec.train_rotation(models["rot"], normal_train, normal_val, epochs=2, device="cpu")
    scores = rec.reconstruction_error(models["ae"], normal_val, "cpu")
    anomaly.threshold_at_specificity(scores.numpy(), 0.95)
    assert spy.calls > 10 and spy.abnormal == 0
    # the spy can fail: the same training on the whole split sees the abnormal images
    rec.train_autoencoder(models["ae"], train.images, val.images, epochs=1, device="cpu")
    assert spy.abnormal > 0


def test_normal_images_refuse_the_sealed_test_split():
    d = synthetic("binary-class", n=16)
    with pytest.raises(TestSetSealed):
        anomaly.normal_images(d.test, 0)
    with pytest.raises(ValueError, match="no image of class"):
        anomaly.normal_images(d.train, 7)


def test_knn_score_threshold_and_metrics():
    torch.manual_seed(0)
    bank, feats = torch.randn(50, 4), torch.randn(20, 4)
    d = torch.cdist(feats, bank)
    assert torch.allclose(anomaly.knn_score(bank, feats, k=3), d.sort(1).values[:, :3].mean(1))
    self_d = torch.cdist(bank, bank).sort(1).values[:, 1:4].mean(1)  # skip the zero distance to itself
    assert torch.allclose(anomaly.knn_score(bank, bank, k=3, exclude_self=True), self_d, atol=1e-5)
    normal = np.arange(100.0)
    t = anomaly.threshold_at_specificity(normal, 0.95)
    assert (normal <= t).mean() == pytest.approx(0.95, abs=0.011)
    y = np.r_[np.zeros(100), np.ones(50)]
    s = np.r_[normal, np.arange(50.0) + 60]
    m = anomaly.anomaly_metrics(y, s, threshold=t, bootstrap=200)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s)) and m["auc_lo"] <= m["auc"] <= m["auc_hi"]
    assert m["specificity"] == pytest.approx((normal <= t).mean()) and m["sensitivity"] == pytest.approx((s[100:] > t).mean())


def test_noise_levels_cover_every_kind_the_chapter_offers():
    from medlib.chapters import spec

    assert set(spec("03_autoencoders")["choices"]["noise"]) == set(NOISE_LEVELS)

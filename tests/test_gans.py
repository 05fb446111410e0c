"""Chapter 04 (GANs): the models' shapes and errors, the losses and the gradient penalty against
analytic values, the training step against a hand-written one, a tiny game that learns;
the generative metrics (domain FID against scipy and torchmetrics, KID, precision/recall,
memorisation, diversity) on sets whose answer is known; the chapter's recipes."""

import copy

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F

from medlib.data.batches import TensorLoader
from medlib.data.synthetic import synthetic
from medlib.metrics import generative as gm
from medlib.models import gan
from medlib.models.cnn import CompactResNet
from medlib.recipes import gans as rg
from medlib.train import Trainer


# ============================================================================ models
@pytest.mark.parametrize("size,channels,k", [(28, 1, 2), (28, 3, 5), (64, 1, 0), (32, 3, 0), (224, 1, 2)])
def test_generator_and_discriminator_shapes(size, channels, k):
    G = gan.Generator(16, channels, k, width=8, size=size)
    D = gan.Discriminator(channels, k, width=8, size=size)
    y = torch.arange(4) % max(k, 1) if k else None
    x = G(torch.randn(4, 16), y)
    assert x.shape == (4, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1  # tanh
    assert D(x, y).shape == (4,)


def test_models_refuse_bad_sizes_and_missing_labels():
    with pytest.raises(ValueError, match="not 7 or 8 times a power of two"):
        gan.Generator(size=30)
    with pytest.raises(ValueError, match="norm must be"):
        gan.Discriminator(norm="instance")
    with pytest.raises(ValueError, match="class-conditional"):
        gan.Generator(8, 1, 2, 8, 28)(torch.randn(2, 8))
    with pytest.raises(ValueError, match="class-conditional"):
        gan.Discriminator(1, 2, 8, 28)(torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="unknown GAN loss"):
        gan.GANStep(gan.Generator(8, size=28), gan.Discriminator(size=28), "hinge")


def test_conditional_generator_uses_its_labels():
    G = gan.Generator(8, 1, 3, 8, 28).eval()
    z = torch.randn(3, 8)
    out = G(z.repeat(3, 1), torch.arange(3).repeat_interleave(3))
    assert not torch.allclose(out[0], out[3])  # same z, another class: another image


def test_projection_discriminator_starts_near_the_unconditional_logit():
    D = gan.Discriminator(1, 4, 8, 28).eval()
    x = torch.randn(8, 1, 28, 28)
    h = D.features(x)
    base = D.out(h)[:, 0]
    assert (D(x, torch.arange(8) % 4) - base).abs().max() < 0.5  # small embedding init


def test_spectral_norm_bounds_every_weight():
    D = gan.Discriminator(1, 2, 8, 28, norm="none", spectral=True).train()
    x = torch.randn(16, 1, 28, 28)
    for _ in range(30):  # the power iteration advances one step per forward pass in train mode
        D(x, torch.zeros(16, dtype=torch.long))
    conv = D.features[0]
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert abs(float(sigma) - 1) < 0.05


def test_sample_is_seeded_and_refuses_missing_labels():
    G = gan.Generator(8, 1, 2, 8, 28)
    y = torch.tensor([0, 1, 1, 0])
    a, b = gan.sample(G, 4, labels=y, seed=3), gan.sample(G, 4, labels=y, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, gan.sample(G, 4, labels=y, seed=4))
    assert not G.training  # eval mode for sampling
    with pytest.raises(ValueError, match="pass labels"):
        gan.sample(G, 4)


# ============================================================================ losses and penalty
def test_losses_are_the_cross_entropies_of_the_game():
    real, fake = torch.randn(50), torch.randn(50)
    d = -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())
    assert torch.allclose(gan.d_loss_ns(real, fake), d, atol=1e-5)
    assert torch.allclose(gan.g_loss_ns(fake), -torch.log(torch.sigmoid(fake)).mean(), atol=1e-5)
    assert torch.allclose(gan.g_loss_saturating(fake), torch.log(1 - torch.sigmoid(fake)).mean(), atol=1e-5)


def test_saturating_gradient_vanishes_where_the_discriminator_rejects():
    logit = torch.tensor([-8.0], requires_grad=True)  # D(G(z)) ~ 3e-4: a confident rejection
    (g_sat,) = torch.autograd.grad(gan.g_loss_saturating(logit), logit)
    (g_ns,) = torch.autograd.grad(gan.g_loss_ns(logit), logit)
    assert abs(g_sat.item()) < 1e-3 and abs(g_ns.item()) > 0.99


def test_gradient_penalty_of_a_linear_critic_is_analytic():
    w = torch.randn(1 * 28 * 28) * 0.1
    critic = lambda x: x.flatten(1) @ w  # noqa: E731 - its gradient is w at every point
    real, fake = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28)
    gp = gan.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    assert abs(gp.item() - (w.norm().item() - 1) ** 2) < 1e-4


def test_gradient_penalty_equals_a_per_image_computation():
    D = gan.Discriminator(1, 2, 8, 28, norm="layer")
    real, fake = torch.randn(6, 1, 28, 28), torch.randn(6, 1, 28, 28)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    eps = torch.rand(6, 1, 1, 1)
    per_image = []
    for i in range(6):  # each image alone: no batch statistics can leak
        x_hat = (eps[i] * real[i:i + 1] + (1 - eps[i]) * fake[i:i + 1]).requires_grad_(True)
        (g,) = torch.autograd.grad(D(x_hat, y[i:i + 1]).sum(), x_hat)
        per_image.append((g.norm() - 1) ** 2)
    assert torch.allclose(gan.gradient_penalty(D, real, fake, y, eps=eps), torch.stack(per_image).mean(), atol=1e-5)


def test_gradient_penalty_is_differentiable_for_the_critic():
    D = gan.Discriminator(1, 0, 8, 28, norm="layer")
    gp = gan.gradient_penalty(D, torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28))
    gp.backward()  # create_graph=True: the penalty trains the critic
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())


# ============================================================================ the step
def _batches(n=3, k=2, seed=0):
    d = synthetic("binary-class" if k == 2 else "multi-class", n=64 * n, seed=seed)
    return list(TensorLoader(d.train, 64, shuffle=True, drop_last=True, seed=seed))[:n]


def test_gan_step_equals_a_hand_written_step():
    torch.manual_seed(0)
    G, D = gan.Generator(16, 1, 2, 8, 28), gan.Discriminator(1, 2, 8, 28)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    batches = _batches()
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    noise = torch.Generator().manual_seed(7)
    for x, y in batches:
        fake = G(torch.randn(len(x), 16, generator=noise), y)
        ones = torch.ones(len(x))
        d_loss = F.binary_cross_entropy_with_logits(D(x, y), ones) + F.binary_cross_entropy_with_logits(
            D(fake.detach(), y), 0 * ones)
        od.zero_grad(), d_loss.backward(), od.step()
        g_loss = F.binary_cross_entropy_with_logits(D(fake, y), ones)
        og.zero_grad(), g_loss.backward(), og.step()
    Trainer(gan.GANStep(G2, D2, "ns", seed=7), epochs=1, progress=False, amp=False).fit(batches)
    for m1, m2 in ((G, G2), (D, D2)):
        for (name, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
            assert torch.equal(a, b), name


def test_wgan_step_updates_the_critic_n_critic_times_per_generator_update():
    G, D = gan.Generator(16, 1, 2, 8, 28), gan.Discriminator(1, 2, 8, 28, norm="layer")
    step = gan.GANStep(G, D, "wgan-gp", n_critic=3, seed=0)
    trainer = Trainer(step, epochs=1, progress=False, amp=False)
    d = synthetic("binary-class", n=192, seed=0)
    batches = list(TensorLoader(d.train, 192, shuffle=True, seed=0))  # one batch = 3 critic chunks of 64
    hist = trainer.fit(batches)
    assert trainer.optimizers["D"][0].state[next(iter(D.parameters()))]["step"].item() == 3
    assert trainer.optimizers["G"][0].state[next(iter(G.parameters()))]["step"].item() == 1
    assert {"train_w_dist", "train_gp"} <= set(hist.epochs[0])


def test_a_tiny_game_learns_the_class_of_its_samples():
    """Two classes of the synthetic set (a bright patch at a class-specific place): after a short
    game the conditional generator puts the patch where the label says."""
    d = synthetic("binary-class", n=512, seed=0)
    torch.manual_seed(0)
    G, D = gan.Generator(16, 1, 2, 16, 28), gan.Discriminator(1, 2, 16, 28)
    rg.train_gan(G, D, "ns", d.train, epochs=12, device="cpu", seed=0, lr=1e-3)
    real_mean = [rg.to_float(d.train.images[d.train.labels[:, 0] == c]).mean(0) for c in (0, 1)]
    right = 0
    for c in (0, 1):
        x = gan.sample(G, 64, labels=torch.full((64,), c), seed=1).mean(0)
        dist = [float(((x - m) ** 2).mean()) for m in real_mean]
        right += int(np.argmin(dist) == c)
    assert right == 2


# ============================================================================ metrics
def test_frechet_distance_of_a_set_with_itself_is_zero_and_matches_the_formula():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(500, 8))
    assert abs(gm.frechet_distance(f, f)) < 1e-6
    g = rng.normal(loc=0.5, scale=2.0, size=(500, 8))
    mu1, mu2, s1, s2 = f.mean(0), g.mean(0), np.cov(f, rowvar=False), np.cov(g, rowvar=False)
    direct = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert abs(gm.frechet_distance(f, g) - direct) < 1e-8
    # two Gaussians with diagonal covariances: sum (mu diff)^2 + sum (sd1 - sd2)^2
    big = rng.normal(size=(200_000, 2)) * [1.0, 3.0]
    other = rng.normal(size=(200_000, 2)) * [2.0, 3.0] + [1.0, 0.0]
    assert abs(gm.frechet_distance(big, other) - (1.0 + 1.0)) < 0.05


class _Embed(nn.Module):
    """A fixed random feature map with an `embed` method, for DomainFeatures."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 5, stride=3)
        self.head = nn.Linear(6, 2)

    def embed(self, x):
        return self.conv(x).mean((2, 3))

    def forward(self, x):
        return self.head(self.embed(x))


def test_domain_fid_equals_the_direct_computation_and_is_zero_for_a_set_with_itself():
    torch.manual_seed(0)
    ext = gm.DomainFeatures(_Embed())
    assert ext.num_features == 6
    real, fake = torch.rand(300, 1, 28, 28) * 2 - 1, torch.rand(300, 1, 28, 28) * 1.5 - 0.5
    direct = gm.frechet_distance(gm.features(ext, real), gm.features(ext, fake))
    assert abs(gm.domain_fid(ext, real, fake) - direct) < 1e-3 * max(1, direct)
    assert abs(gm.domain_fid(ext, real, real)) < 1e-3


def test_domain_features_of_a_compactresnet_are_its_pooled_features():
    net = CompactResNet(1, 2, width=8).eval()
    ext = gm.DomainFeatures(net)
    x = torch.randn(5, 1, 28, 28)
    assert torch.allclose(ext(x), net.pool(net.features(x)).flatten(1))
    ext.train()
    assert not net.training  # torchmetrics may call .train(): the judge stays in eval mode


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    ext = gm.DomainFeatures(_Embed())
    a, b = torch.rand(400, 1, 28, 28) * 2 - 1, torch.rand(400, 1, 28, 28) * 2 - 1
    same, _ = gm.domain_kid(ext, a, b, subsets=20, subset_size=200)
    diff, _ = gm.domain_kid(ext, a, b * 0.3 + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 0.05 * diff and diff > 0


def test_precision_and_recall_of_a_set_against_itself_are_one():
    f = torch.randn(300, 5)
    assert gm.precision_recall(f, f) == (1.0, 1.0)


def test_precision_and_recall_separate_fidelity_from_coverage():
    torch.manual_seed(0)
    real = torch.randn(1000, 2)
    collapsed = torch.randn(1000, 2) * 0.05  # every sample near the centre: realistic, not diverse
    p, r = gm.precision_recall(real, collapsed)
    assert p > 0.95 and r < 0.3
    far = torch.randn(1000, 2) + 8  # off the data
    p, r = gm.precision_recall(real, far)
    assert p < 0.05 and r < 0.05
    with pytest.raises(ValueError, match="more than 3 points"):
        gm.precision_recall(real[:3], far)


def test_memorisation_flags_copies_and_not_new_images():
    torch.manual_seed(0)
    train = torch.rand(200, 1, 28, 28) * 2 - 1
    heldout = torch.rand(100, 1, 28, 28) * 2 - 1
    copies = gm.memorisation(train[:50].clone(), train, heldout)
    assert copies["exact_copies"] == 50 and copies["closer_than_heldout_p01"] == 1.0
    fresh = gm.memorisation(torch.rand(50, 1, 28, 28) * 2 - 1, train, heldout)
    assert fresh["exact_copies"] == 0 and fresh["closer_than_heldout_p01"] < 0.1
    assert 0.8 < fresh["median_fake"] / fresh["median_heldout"] < 1.2


def test_nearest_distances_can_exclude_self():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    d, i = gm.nearest_distances(x, x, exclude_self=True)
    assert d.tolist() == [1.0, 1.0, 2.0] and i.tolist() == [1, 0, 1]


def test_diversity_falls_under_collapse():
    spread, collapsed = torch.randn(100, 4), torch.randn(1, 4).repeat(100, 1) + 0.01 * torch.randn(100, 4)
    assert gm.diversity(collapsed) < 0.05 * gm.diversity(spread)
    assert gm.diversity(torch.randn(1, 4)) == 0.0


# ============================================================================ recipes
def test_labels_like_keeps_the_class_shares():
    d = synthetic("multi-class", n=300, seed=0)
    y = rg.labels_like(d.train, 900, seed=0)
    share = np.bincount(y.numpy(), minlength=d.info.n_classes) / 900
    real = np.bincount(d.train.labels[:, 0].numpy(), minlength=d.info.n_classes) / 300
    assert np.allclose(share, real)


def test_synthetic_split_is_uint8_with_the_conditioned_labels():
    d = synthetic("binary-class", n=64, seed=0)
    G = gan.Generator(8, 1, 2, 8, 28)
    labels = torch.tensor([0, 1, 1, 0, 1])
    s = rg.synthetic_split(G, labels, d.info, seed=0)
    assert s.images.dtype == torch.uint8 and s.images.shape == (5, 1, 28, 28)
    assert s.labels[:, 0].tolist() == labels.tolist()
    assert torch.equal(rg.to_uint8(rg.to_float(s.images)), s.images)  # the round trip is exact


def test_gan_epochs_follow_the_image_budget():
    d = synthetic("binary-class", n=500, seed=0)
    assert rg.gan_epochs(d.train, 5000) == 10 and rg.gan_epochs(d.train, 10) == 1


def test_train_gan_refuses_fewer_images_than_a_batch_and_records_grids():
    d = synthetic("binary-class", n=40, seed=0)
    G, D = gan.Generator(8, 1, 2, 8, 28), gan.Discriminator(1, 2, 8, 28)
    with pytest.raises(ValueError, match="fewer than one batch"):
        rg.train_gan(G, D, "ns", d.train, epochs=1, device="cpu")
    d = synthetic("binary-class", n=128, seed=0)
    h = rg.train_gan(G, D, "ns", d.train, epochs=2, device="cpu", grid=3)
    assert h.grids.shape == (2, 6, 1, 28, 28)


def test_train_gan_keeps_the_best_validation_fid_epoch():
    d = synthetic("binary-class", n=128, seed=0)
    G, D = gan.Generator(8, 1, 2, 8, 28), gan.Discriminator(1, 2, 8, 28)
    ext = gm.DomainFeatures(_Embed())
    h = rg.train_gan(G, D, "ns", d.train, epochs=3, device="cpu", extractor=ext, val=d.val, n_val=64)
    fids = h.column("val_fid")
    assert h.select_by == "fid" and h.best_score == min(fids) and fids[h.best_epoch - 1] == min(fids)


def test_mean_sd_says_one_run():
    assert rg.mean_sd([0.5]) == "0.500 (one run)"
    assert rg.mean_sd([0.4, 0.6]) == "0.500 ± 0.141"

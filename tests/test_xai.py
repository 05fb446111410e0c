"""medlib.xai: the hand-written methods against Captum / pytorch-grad-cam / Quantus, the axioms,
and the evaluation metrics on models whose right answer is known."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from medlib import xai
from medlib.models.cnn import CompactResNet
from medlib.models.vit import ViT


def _cnn(seed=0, classes=2):
    torch.manual_seed(seed)
    m = CompactResNet(1, classes).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.1), bn.running_var.uniform_(0.5, 1.5)
    return m


def _x(n=4, c=1, s=28, seed=1):
    return torch.randn(n, c, s, s, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)


class HalfBlind(nn.Module):
    """A model that ignores the right half of the image."""

    def __init__(self, net=None):
        super().__init__()
        self.net = net if net is not None else _cnn(3)

    def forward(self, x):
        keep = torch.ones_like(x)
        keep[..., x.shape[-1] // 2:] = 0
        return self.net(x * keep)


class Linear(nn.Module):
    """logit_1 = sum(w * x): the exact attribution of pixel i is w_i x_i."""

    def __init__(self, s=8):
        super().__init__()
        self.w = nn.Parameter(torch.randn(1, 1, s, s, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        z = (self.w * x).flatten(1).sum(1, keepdim=True)
        return torch.cat([-z, z], 1)


def test_ig_equals_captum_and_is_complete():
    from captum.attr import IntegratedGradients

    m, x, t = _cnn(), _x(), torch.tensor([0, 1, 1, 0])
    mine = xai.integrated_gradients(m, x, t, steps=32)
    ref = IntegratedGradients(m).attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=32,
                                           method="riemann_middle")
    assert torch.allclose(mine, ref, atol=1e-5)
    big = xai.integrated_gradients(m, x, t, steps=256)
    with torch.no_grad():
        gap = m(x).gather(1, t[:, None])[:, 0] - m(torch.zeros_like(x)).gather(1, t[:, None])[:, 0]
    assert torch.allclose(big.sum((1, 2, 3)), gap, rtol=0.01, atol=0.01 * gap.abs().max().item())


@pytest.mark.parametrize("layer_name", ["features.4", "features.2"])
def test_gradcam_equals_captum(layer_name):
    from captum.attr import LayerGradCam

    m, x, t = _cnn(), _x(), torch.tensor([1, 0, 1, 0])
    layer = m.get_submodule(layer_name)
    mine = xai.gradcam_lowres(m, x, t, layer)
    ref = LayerGradCam(m, layer).attribute(x, target=t, relu_attributions=True)[:, 0]
    assert torch.allclose(mine, ref, atol=1e-5)


def _pgc(cls, m, layer, x, t, reshape=None):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with cls(model=m, target_layers=[layer], reshape_transform=reshape) as cam:
        return torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(k)) for k in t]))


def _unit(maps):
    maps = maps - maps.amin((1, 2), keepdim=True)
    return maps / (1e-7 + maps.amax((1, 2), keepdim=True))


@pytest.mark.parametrize("plus", [False, True])
def test_gradcam_and_plusplus_equal_pytorch_grad_cam(plus):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus

    m, x, t = _cnn(), _x(), torch.tensor([1, 0, 1, 1])
    ref = _pgc(GradCAMPlusPlus if plus else GradCAM, m, m.features[4], x, t)
    mine = _unit(xai.gradcam(m, x, t, m.features[4], plus=plus))
    assert (mine - ref).abs().max() < 1e-3  # cv2.resize (pytorch-grad-cam) rounds its bilinear weights


def test_vit_gradcam_reshape_and_rollout():
    torch.manual_seed(0)
    m = ViT(1, 2, 28, patch=7, dim=32, depth=2, heads=2).eval()
    x, t = _x(2), torch.tensor([0, 1])
    layers = xai.cam_layers(m, 28, 1)
    assert list(layers)[0].startswith("block 2")
    mod, reshape = layers[next(iter(layers))]
    low = xai.gradcam_lowres(m, x, t, mod, reshape)
    assert low.shape == (2, 4, 4)
    g_out = xai.layer_activation_and_grad(m, x, t, m.blocks[-1], reshape)[1]
    assert g_out.abs().max() == 0  # why not the last block's output: only its class token reaches the head
    assert xai.layer_activation_and_grad(m, x, t, mod, reshape)[1].abs().max() > 0
    from pytorch_grad_cam import GradCAM

    ref = _pgc(GradCAM, m, mod, x, t, reshape)
    assert (_unit(xai.upsample(low, 28)) - ref).abs().max() < 1e-3
    r = xai.attribute("rollout", m, x, t)
    assert r.shape == (2, 28, 28) and (r >= 0).all()
    assert "rollout" in xai.methods_for(m) and "rollout" not in xai.methods_for(_cnn())


def test_cnn_layers_deepest_first():
    names = list(xai.cam_layers(_cnn(), 28, 1))
    assert names == ["features.4 (7x7)", "features.2 (14x14)", "features.0 (28x28)"]
    with pytest.raises(ValueError, match="no Grad-CAM layers"):
        xai.cam_layers(Linear(), 8, 1)


@pytest.mark.parametrize("method", ["gradients", "smoothgrad", "ig", "occlusion", "kernelshap"])
def test_ignored_half_gets_zero_attribution(method):
    # KernelSHAP is a sampled regression: exact (a dummy feature gets 0) for an additive model only
    m = HalfBlind(Linear(28) if method == "kernelshap" else None).eval()
    x, t = _x(2), torch.tensor([0, 1])
    maps = xai.attribute(method, m, x, t)
    assert maps.shape == (2, 28, 28)
    # occlusion windows and KernelSHAP cells (4 px) that straddle column 14 see both halves
    blind = maps[..., 14:] if method in ("gradients", "smoothgrad", "ig") else maps[..., 16:]
    tol = 1e-2 if method == "kernelshap" else 1e-5  # Captum's regression solver leaves ~1e-3 of noise
    assert blind.abs().max() < tol * maps.abs().max(), f"{method} attributes to pixels the model never reads"
    assert maps[..., :12].abs().max() > 0


def test_linear_model_exact_attributions():
    m, x, t = Linear(), _x(3, s=8), torch.tensor([1, 1, 1])
    exact = (m.w * x)[:, 0].detach()
    assert torch.allclose(xai.attribute("ig", m, x, t), exact, atol=1e-5)
    assert torch.allclose(xai.attribute("gradients", m, x, t), m.w[0, 0].abs().detach().expand(3, 8, 8), atol=1e-6)


def test_smoothgrad_with_no_noise_is_the_gradient():
    m, x, t = _cnn(), _x(2), torch.tensor([0, 1])
    assert torch.allclose(xai.smoothgrad(m, x, t, samples=2, sigma=0.0), xai.gradients(m, x, t), atol=1e-6)


def test_unknown_method_and_modes_are_refused():
    m, x, t = Linear(), _x(1, s=8), torch.tensor([1])
    with pytest.raises(ValueError, match="unknown method"):
        xai.attribute("lrp", m, x, t)
    with pytest.raises(ValueError, match="mode"):
        xai.perturbation_curve(m, x, t, x[:, 0], mode="both")
    with pytest.raises(ValueError, match="order"):
        xai.road_curve(m, x, t, x[:, 0], order="up")


def test_deletion_auc_perfect_below_random_and_insertion_above():
    m, x = Linear(), _x(16, s=8, seed=3)
    t = torch.ones(16, dtype=torch.long)
    perfect = (m.w * x)[:, 0].detach()  # exact contributions
    rnd = xai.attribute("random", m, x, t)
    d_perfect = xai.curve_auc(xai.perturbation_curve(m, x, t, perfect, steps=16))
    d_random = xai.curve_auc(xai.perturbation_curve(m, x, t, rnd, steps=16))
    assert d_perfect.mean() < d_random.mean() - 0.1
    i_perfect = xai.curve_auc(xai.perturbation_curve(m, x, t, perfect, steps=16, mode="insertion"))
    i_random = xai.curve_auc(xai.perturbation_curve(m, x, t, rnd, steps=16, mode="insertion"))
    assert i_perfect.mean() > i_random.mean() + 0.1
    curve = xai.perturbation_curve(m, x, t, perfect, steps=4)
    assert curve.shape == (16, 5) and torch.allclose(curve[:, -1], torch.full((16,), 0.5))  # all mid-grey: 50/50


def test_deletion_curve_equals_quantus_pixel_flipping():
    import quantus

    m, x = _cnn(), _x(4, seed=5)
    t = torch.tensor([0, 1, 0, 1])
    a = torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(0))  # no ties
    fill = x.amin((1, 2, 3))
    mine = xai.perturbation_curve(m, x, t, a, steps=28, fill=fill.view(-1, 1, 1, 1))
    metric = quantus.PixelFlipping(features_in_step=28, perturb_baseline="black", normalise=False,
                                   disable_warnings=True)
    ref = np.array(metric(model=m, x_batch=x.numpy(), y_batch=t.numpy(), a_batch=a[:, None].numpy(),
                          channel_first=True, softmax=True, device="cpu"))
    assert np.allclose(mine[:, 1:].numpy(), ref, atol=1e-5)


def test_imputation_matches_a_direct_sparse_solve():
    from scipy.sparse import lil_matrix
    from scipy.sparse.linalg import spsolve

    s = 10
    x = _x(1, s=s, seed=7)
    removed = torch.zeros(1, 1, s, s, dtype=torch.bool)
    removed[0, 0, 2:7, 3:9] = True
    removed[0, 0, 0, 0] = True
    mine = xai.impute_linear(x, removed, iters=2000)[0, 0]
    idx = {p: i for i, p in enumerate(zip(*np.nonzero(removed[0, 0].numpy())))}
    a, b = lil_matrix((len(idx), len(idx))), np.zeros(len(idx))
    for (i, j), row in idx.items():
        nb = [(i + di, j + dj, w) for di in (-1, 0, 1) for dj in (-1, 0, 1)
              if (di or dj) and 0 <= i + di < s and 0 <= j + dj < s
              for w in [1 / 6 if di == 0 or dj == 0 else 1 / 12]]
        total = sum(w for *_, w in nb)
        a[row, row] = 1.0
        for ii, jj, w in nb:
            if (ii, jj) in idx:
                a[row, idx[(ii, jj)]] -= w / total
            else:
                b[row] += w / total * x[0, 0, ii, jj].item()
    direct = spsolve(a.tocsr(), b)
    got = np.array([mine[i, j].item() for (i, j) in idx])
    assert np.allclose(got, direct, atol=1e-4)
    assert torch.equal(mine[~removed[0, 0]], x[0, 0][~removed[0, 0]])  # kept pixels untouched


def test_road_morf_below_lerf_for_exact_attribution():
    m, x = Linear(), _x(16, s=8, seed=4)
    t = torch.ones(16, dtype=torch.long)
    exact = (m.w * x)[:, 0].detach()
    morf = xai.road_curve(m, x, t, exact, order="morf").mean()
    lerf = xai.road_curve(m, x, t, exact, order="lerf").mean()
    assert morf < lerf


def test_pointing_and_energy():
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[:, 2:4, 2:4] = True
    maps = torch.zeros(3, 8, 8)
    maps[0, 3, 3] = 1  # inside
    maps[1, 4, 4] = 1  # one pixel off: a hit only with tolerance
    maps[2, 7, 7] = 1  # far
    assert xai.pointing_game(maps, masks, tolerance=0).tolist() == [1, 0, 0]
    assert xai.pointing_game(maps, masks, tolerance=1).tolist() == [1, 1, 0]
    assert xai.energy_in_mask(maps, masks).tolist() == [1, 0, 0]
    import quantus

    ref = quantus.PointingGame(disable_warnings=True)
    x = torch.zeros(3, 1, 8, 8)
    got = ref(model=None, x_batch=x.numpy(), y_batch=np.zeros(3, int), a_batch=maps[:, None].numpy(),
              s_batch=masks[:, None].numpy().astype(float), channel_first=True)
    assert [bool(v) for v in got] == [True, False, False]


def test_markers_planted_where_asked():
    imgs = torch.full((4, 1, 28, 28), 50, dtype=torch.uint8)
    present = torch.tensor([True, False, True, False])
    out, masks = xai.plant_markers(imgs, present, seed=0)
    assert torch.equal(out[1], imgs[1]) and not masks[1].any()
    assert masks[0].any() and out[0].max() > 120
    inside = out[0, 0][masks[0]].float().mean()
    assert inside > out[0, 0][~masks[0]].float().mean() + 30
    again, _ = xai.plant_markers(imgs, present, seed=0)
    assert torch.equal(again, out)


def test_randomization_cascade_changes_gradients_not_edges():
    m, x, t = _cnn(), _x(4), torch.tensor([0, 1, 0, 1])
    base_g, base_e = xai.attribute("gradients", m, x, t), xai.attribute("edges", m, x, t)
    stages = []
    for name, rnd in xai.cascading_randomization(m, seed=0):
        stages.append(name)
        last_g, last_e = xai.attribute("gradients", rnd, x, t), xai.attribute("edges", rnd, x, t)
    assert stages[0] == "head" and stages[-1] == "features.0"
    assert torch.allclose(xai.spearman(base_e, last_e), torch.ones(4))  # the edge detector never notices
    assert xai.spearman(base_g, last_g).mean() < 0.5
    assert torch.allclose(xai.map_ssim(base_e, last_e), torch.ones(4), atol=1e-6)
    for p, q in zip(m.parameters(), _cnn().parameters()):  # the original model is untouched
        assert torch.equal(p, q)
    vit_stages = [n for n, _ in xai.randomization_stages(ViT(1, 2, 28, patch=7, dim=16, depth=2, heads=2))]
    assert vit_stages == ["head", "norm", "blocks.1", "blocks.0", "patch_embed", "tokens"]


def test_spearman_matches_scipy_and_constant_maps_are_zero():
    from scipy.stats import spearmanr

    a, b = torch.rand(3, 6, 6), torch.rand(3, 6, 6)
    b[0] = a[0] ** 2  # monotone: 1
    b[1, :3] = 0.5  # ties
    got = xai.spearman(a, b)
    ref = [spearmanr(x.flatten(), y.flatten())[0] for x, y in zip(a, b)]
    assert np.allclose(got.numpy(), ref, atol=1e-5) and got[0] == pytest.approx(1.0)
    assert xai.spearman(a, torch.zeros(3, 6, 6)).tolist() == [0, 0, 0]


def test_mean_ci():
    mean, lo, hi = xai.mean_ci(np.r_[np.zeros(50), np.ones(50)], seed=0)
    assert mean == 0.5 and lo < 0.5 < hi and hi - lo < 0.25
    assert np.isnan(xai.mean_ci([])[0])

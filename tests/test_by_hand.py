"""The mechanisms the chapters write by hand, tested against the library: the functions and
classes are taken from the notebooks' own cells (so the test checks the code students read)."""

import ast
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from medlib.models import cnn
from medlib.models.unet import UNet
from medlib.train import fit

ROOT = Path(__file__).resolve().parents[1]


def definitions(notebook: str, *names: str) -> dict:
    """exec only the `def`/`class` statements named `names` from a chapter's code cells."""
    nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    ns = {"torch": torch, "nn": nn, "F": F, "np": np, "cnn": cnn}
    found = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
                exec(compile(ast.Module([node], []), notebook, "exec"), ns)
                found.add(node.name)
    assert found == set(names), f"{notebook} no longer defines {set(names) - found}"
    return ns


def test_01_simplecnn_by_hand_is_medlibs():
    ns = definitions("01_cnn.ipynb", "SimpleCNN")
    for kw in ({}, {"batch_norm": False}, {"in_channels": 3, "num_classes": 5, "dropout": 0.5}):
        torch.manual_seed(0)
        lib = cnn.SimpleCNN(**kw).eval()
        ours = ns["SimpleCNN"](**kw).eval()
        ours.load_state_dict(lib.state_dict())
        x = torch.randn(3, kw.get("in_channels", 1), 28, 28)
        assert torch.allclose(ours(x), lib(x), atol=1e-6)


def test_01_one_epoch_by_hand_equals_fit():
    from medlib.data.batches import TensorLoader
    from medlib.data.synthetic import synthetic

    ns = definitions("01_cnn.ipynb", "SimpleCNN", "train_one_epoch")
    d = synthetic("binary-class", n=64)
    torch.manual_seed(1)
    a = ns["SimpleCNN"]()
    b = ns["SimpleCNN"]()
    b.load_state_dict(a.state_dict())
    ns["train_one_epoch"](a, TensorLoader(d.train, 16, shuffle=True, seed=3),
                          torch.optim.AdamW(a.parameters(), lr=3e-3, weight_decay=1e-4), F.cross_entropy)
    fit(b, TensorLoader(d.train, 16, shuffle=True, seed=3), epochs=1, loss_fn=F.cross_entropy, optimizer="adamw",
        lr=3e-3, weight_decay=1e-4, schedule="constant", progress=False)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(a.head.weight, ns["SimpleCNN"]().head.weight)  # it trained


def test_01_batch_norm_by_hand_in_both_modes():
    ns = definitions("01_cnn.ipynb", "batch_norm")
    mine, theirs = nn.BatchNorm2d(5), nn.BatchNorm2d(5)
    with torch.no_grad():
        mine.weight.uniform_(0.5, 2), mine.bias.uniform_(-1, 1)
    theirs.load_state_dict(mine.state_dict())
    for step in range(4):
        x = torch.randn(7, 5, 3, 4) * (step + 1) + step
        assert torch.allclose(ns["batch_norm"](x, mine, training=True), theirs.train()(x), atol=1e-5)
    assert torch.allclose(mine.running_var, theirs.running_var) and torch.allclose(mine.running_mean, theirs.running_mean)
    x = torch.randn(2, 5, 3, 3)
    assert torch.allclose(ns["batch_norm"](x, mine, training=False), theirs.eval()(x), atol=1e-5)


def test_01_residual_block_passes_the_gradient_through_its_identity_path():
    """With F(x) = 0 (the last BN's scale and shift at zero), y = ReLU(x + 0): for positive
    inputs the block is the identity and so is its Jacobian."""
    block = cnn.ResBlock(4).train()
    with torch.no_grad():
        block.body[-1].weight.zero_(), block.body[-1].bias.zero_()
    x = (torch.rand(2, 4, 6, 6) + 0.1).requires_grad_()
    block(x).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))


def test_05_transposed_convolution_by_hand():
    ns = definitions("05_unet.ipynb", "conv_transpose_2x2")
    x, w, b = torch.randn(2, 3, 5, 4), torch.randn(3, 6, 2, 2), torch.randn(6)
    assert torch.allclose(ns["conv_transpose_2x2"](x, w, b), F.conv_transpose2d(x, w, b, stride=2), atol=1e-5)
    flat = ns["conv_transpose_2x2"](torch.ones(1, 1, 3, 3), w[:1, :1], torch.zeros(1))  # a flat input ...
    assert torch.equal(flat[0, 0, :2, :2].repeat(3, 3), flat[0, 0])  # ... comes out as a 2x2 checkerboard


def test_05_attention_gate_by_hand():
    ns = definitions("05_unet.ipynb", "attention_gate_by_hand")
    torch.manual_seed(0)
    gate = UNet(1, 1, width=4, depth=1, attention=True).gates[0]
    x, g = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    out, alpha = ns["attention_gate_by_hand"](x, g, gate)
    assert torch.allclose(out, gate(x, g), atol=1e-6) and torch.allclose(alpha, gate.last_map, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_05_hd95_by_hand_equals_monai(seed):
    from monai.metrics import HausdorffDistanceMetric

    ns = definitions("05_unet.ipynb", "hd95_by_hand")
    g = torch.Generator().manual_seed(seed)
    a = F.max_pool2d((torch.rand(1, 1, 24, 24, generator=g) > 0.9).float(), 5, 1, 2)[0, 0].bool()
    b = F.max_pool2d((torch.rand(1, 1, 24, 24, generator=g) > 0.9).float(), 5, 1, 2)[0, 0].bool()
    onehot = lambda m: torch.stack([~m, m]).float()[None]  # noqa: E731
    ref = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")(onehot(a), onehot(b))
    assert ns["hd95_by_hand"](a, b) == pytest.approx(ref.item(), abs=1e-4)


@pytest.mark.parametrize("cell, module, lstm", [("rnn_cell", nn.RNN, False), ("lstm_cell", nn.LSTM, True),
                                                ("gru_cell", nn.GRU, False)])
def test_02_recurrent_cells_by_hand_equal_pytorch(cell, module, lstm):
    ns = definitions("02_rnn.ipynb", cell, "unroll", "weights_of")
    torch.manual_seed(3)
    ref = module(4, 6, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-0.7, 0.7)
    x = torch.randn(2, 8, 4, dtype=torch.float64)
    out = ref(x)[0]
    fwd = ns["unroll"](ns[cell], x, ns["weights_of"](ref), lstm=lstm)
    bwd = ns["unroll"](ns[cell], x.flip(1), ns["weights_of"](ref, reverse=True), lstm=lstm).flip(1)
    assert torch.allclose(fwd, out[..., :6], atol=1e-6) and torch.allclose(bwd, out[..., 6:], atol=1e-6)


def test_02_bptt_by_hand_equals_autograd():
    ns = definitions("02_rnn.ipynb", "bptt_rnn")
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 12, 4, generator=g, dtype=torch.float64)
    w_ih, w_hh = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 6, generator=g, dtype=torch.float64)
    b, w_out = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    params = [p.clone().requires_grad_() for p in (w_ih, w_hh, b)]
    loss, grads = ns["bptt_rnn"](x, *params, w_out)
    loss.backward()
    for name, p in zip(("w_ih", "w_hh", "b"), params):
        assert torch.allclose(grads[name], p.grad, atol=1e-9), name


def test_02_attention_pool_by_hand():
    from medlib.models.rnn import AttentionPool

    ns = definitions("02_rnn.ipynb", "attention_pool")
    pool = AttentionPool(8)
    h = torch.randn(4, 11, 8)
    z, a = ns["attention_pool"](h, pool.proj, pool.score)
    ref_z, ref_a = pool(h)
    assert torch.allclose(z, ref_z, atol=1e-6) and torch.allclose(a, ref_a, atol=1e-6)


def test_03_psnr_and_ssim_by_hand_equal_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    ns = definitions("03_autoencoders.ipynb", "psnr_by_hand", "ssim_by_hand")
    rng = np.random.default_rng(0)
    x = rng.random((3, 1, 28, 28))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    p = ns["psnr_by_hand"](torch.as_tensor(x), torch.as_tensor(y))
    s = ns["ssim_by_hand"](torch.as_tensor(x), torch.as_tensor(y))
    for i in range(3):
        assert float(p[i]) == pytest.approx(peak_signal_noise_ratio(x[i, 0], y[i, 0], data_range=1), abs=1e-6)
        assert float(s[i]) == pytest.approx(structural_similarity(x[i, 0], y[i, 0], data_range=1), abs=1e-6)


def test_03_autoencoder_epoch_by_hand_equals_fit():
    from medlib.models.autoencoder import ConvAutoencoder
    from medlib.recipes.autoencoders import PairBatches

    ns = definitions("03_autoencoders.ipynb", "train_autoencoder_epoch")
    images = torch.randint(0, 256, (96, 1, 28, 28), dtype=torch.uint8)
    torch.manual_seed(0)
    a = ConvAutoencoder(1, 8, 28, width=8)
    b = ConvAutoencoder(1, 8, 28, width=8)
    b.load_state_dict(a.state_dict())
    ns["train_autoencoder_epoch"](a, PairBatches(images, 32, seed=1), torch.optim.AdamW(a.parameters(), lr=3e-3,
                                                                                       weight_decay=1e-4))
    fit(b, PairBatches(images, 32, seed=1), epochs=1, loss_fn=F.mse_loss, optimizer="adamw", lr=3e-3,
        weight_decay=1e-4, schedule="constant", progress=False)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_03_vae_step_by_hand_equals_vaestep():
    from medlib.models.autoencoder import VAE
    from medlib.recipes.autoencoders import PairBatches, VAEStep
    from medlib.train import Trainer

    ns = definitions("03_autoencoders.ipynb", "neg_elbo_by_hand")
    images = torch.randint(0, 256, (96, 1, 28, 28), dtype=torch.uint8)
    torch.manual_seed(0)
    a, b = VAE(1, 4, 28, width=8), VAE(1, 4, 28, width=8)
    b.load_state_dict(a.state_dict())
    opt = torch.optim.AdamW(a.parameters(), lr=2e-3, weight_decay=0.0)
    torch.manual_seed(7)
    a.train()
    for x, _ in PairBatches(images, 32, seed=1):
        loss = ns["neg_elbo_by_hand"](a, x)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(7)
    Trainer(VAEStep(b, lr=2e-3, schedule="constant"), epochs=1, device="cpu", progress=False).fit(
        PairBatches(images, 32, seed=1))
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_07_attention_block_patches_and_rollout_by_hand_equal_pytorch_and_medlib():
    import math

    from medlib.models.vit import Block, PatchEmbed, attention_maps, rollout, vit

    ns = definitions("07_vit.ipynb", "patchify", "attention_by_hand", "multi_head_by_hand", "block_by_hand",
                     "rollout_by_hand", "drop_path_by_hand")
    ns["math"] = math
    torch.manual_seed(0)
    x = torch.randn(2, 3, 28, 28)
    pe = PatchEmbed(3, 16, 7, 28)
    assert torch.allclose(ns["patchify"](x, 7) @ pe.proj.weight.flatten(1).T + pe.proj.bias, pe(x), atol=1e-5)
    q, k, v = torch.randn(3, 2, 2, 9, 8).unbind(0)
    assert torch.allclose(ns["attention_by_hand"](q, k, v)[0], F.scaled_dot_product_attention(q, k, v), atol=1e-5)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True).eval()
    blk = Block(32, 4, 2.0).load_from_torch_layer(layer).eval()
    z = torch.randn(2, 10, 32)
    with torch.no_grad():
        assert torch.allclose(ns["block_by_hand"](z, blk), layer(z), atol=1e-5)
        mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
        blk.attn.qkv.weight.copy_(mha.in_proj_weight), blk.attn.qkv.bias.copy_(mha.in_proj_bias)
        blk.attn.proj.weight.copy_(mha.out_proj.weight), blk.attn.proj.bias.copy_(mha.out_proj.bias)
        assert torch.allclose(ns["multi_head_by_hand"](z, blk.attn.qkv, blk.attn.proj, 4)[0], mha(z, z, z)[0],
                              atol=1e-5)
    model = vit(1, 2, 28, dim=32, depth=3, heads=2)
    att = attention_maps(model, torch.randn(3, 1, 28, 28))
    assert torch.allclose(ns["rollout_by_hand"](att), rollout(att), atol=1e-5)
    from torchvision.ops import StochasticDepth

    t = torch.randn(16, 5, 4)
    torch.manual_seed(3)
    ours = ns["drop_path_by_hand"](t, 0.3)
    torch.manual_seed(3)
    assert torch.equal(ours, StochasticDepth(0.3, "row").train()(t))


def test_09_attributions_and_deletion_by_hand_equal_medlib_and_captum():
    from captum.attr import IntegratedGradients, LayerGradCam

    from medlib import xai
    from medlib.models.cnn import CompactResNet

    ns = definitions("09_xai.ipynb", "gradients_by_hand", "smoothgrad_by_hand", "integrated_gradients_by_hand",
                     "gradcam_by_hand", "deletion_by_hand")
    ns.update(torch=torch, F=F, np=np)
    torch.manual_seed(0)
    m = CompactResNet(1, 2).eval()
    x, t = torch.randn(3, 1, 28, 28).clamp(-1, 1), torch.tensor([0, 1, 1])
    assert torch.allclose(ns["gradients_by_hand"](m, x, t), xai.gradients(m, x, t), atol=1e-6)
    assert torch.allclose(ns["smoothgrad_by_hand"](m, x, t, 3, 0.15, 5), xai.smoothgrad(m, x, t, 3, 0.15, 5), atol=1e-6)
    ig = ns["integrated_gradients_by_hand"](m, x, t, 16)
    ref = IntegratedGradients(m).attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=16, method="riemann_middle")
    assert torch.allclose(ig, ref, atol=1e-5)
    cam = ns["gradcam_by_hand"](m, x, t, m.features[4])
    assert torch.allclose(cam, LayerGradCam(m, m.features[4]).attribute(x, target=t, relu_attributions=True)[:, 0], atol=1e-5)
    sal = torch.rand(28, 28)
    curve = ns["deletion_by_hand"](m, x[:1], 1, sal, 7)
    assert np.allclose(curve, xai.perturbation_curve(m, x[:1], t[1:2], sal[None], steps=7)[0].numpy(), atol=1e-5)


def test_06_nt_xent_and_simclr_step_by_hand_equal_medlib_and_lightly():
    import copy

    from lightly.loss import NTXentLoss

    from medlib import transfer
    from medlib.models.cnn import CompactResNet

    ns = definitions("06_transfer_learning.ipynb", "nt_xent_by_hand", "simclr_step_by_hand")
    ns.update(transfer=transfer, AUG=transfer.simclr_augment(), TAU=0.5)
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    hand = ns["nt_xent_by_hand"](z1, z2, 0.5)
    assert torch.allclose(hand, transfer.nt_xent(z1, z2, 0.5), atol=1e-6)
    assert torch.allclose(hand, NTXentLoss(temperature=0.5)(z1, z2), atol=1e-6)
    torch.manual_seed(0)
    net = transfer.SimCLR(CompactResNet(1, 2, width=8), 16, 8)
    twin = copy.deepcopy(net)
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    net.train()
    ns["simclr_step_by_hand"](net, opt, x, torch.Generator().manual_seed(3))
    from medlib.train import Trainer

    Trainer(transfer.SimCLRStep(twin, ns["AUG"], temperature=0.5, lr=1e-3, weight_decay=1e-4, schedule="constant",
                                warmup_epochs=0, seed=3), epochs=1, progress=False).fit([(x,)])
    for a, b in zip(net.state_dict().values(), twin.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_11_calibration_conformal_and_selective_prediction_by_hand_equal_medlib():
    import scipy.optimize

    from medlib.metrics import calibration as cal

    ns = definitions("11_trust.ipynb", "reliability_by_hand", "ece_by_hand", "risk_coverage_by_hand", "lac_by_hand",
                     "nll_at", "temperature_by_hand")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 3)) * 3
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in np.exp(z / 2) / np.exp(z / 2).sum(1, keepdims=True)])
    assert abs(ns["ece_by_hand"](y, p) - cal.ece(y, p)) < 1e-12
    r = ns["reliability_by_hand"](y, p)
    lib = cal.reliability(y, p)
    assert np.array_equal(r[:, 0], lib["count"]) and np.allclose(r[:, 2], lib["accuracy"], equal_nan=True)
    correct, u = (p.argmax(1) == y).astype(float), rng.random(400)
    assert np.allclose(ns["risk_coverage_by_hand"](correct, u)[1], cal.risk_coverage(correct, u)[1])
    sets, q = ns["lac_by_hand"](p[:200], y[:200], p[200:], 0.1)
    assert q == cal.conformal_quantile(cal.nonconformity(p[:200], y[:200]), 0.1)
    assert np.array_equal(sets, cal.prediction_sets(p[200:], q))
    ns.update(z_t=torch.from_numpy(z).double(), y_t=torch.from_numpy(y))  # the globals the notebook's cells define
    t_hand = ns["temperature_by_hand"]()
    t_direct = scipy.optimize.minimize_scalar(lambda t: ns["nll_at"](1 / t).item(), bounds=(0.05, 20),
                                              method="bounded", options={"xatol": 1e-8}).x
    assert abs(t_hand - cal.fit_temperature(z, y)) / t_hand < 1e-4 and abs(t_hand - t_direct) / t_hand < 1e-3
    assert 1.5 < t_hand < 2.6  # the labels were drawn at temperature 2


def test_11_mc_dropout_and_active_learning_loop_by_hand_equal_medlib():
    from types import SimpleNamespace

    from medlib import active
    from medlib import uncertainty as unc
    from medlib.data.batches import normalize
    from medlib.data.synthetic import synthetic
    from medlib.env import derive_seed
    from medlib.evaluation import evaluate
    from medlib.recipes import trust as rt

    ns = definitions("11_trust.ipynb", "mc_dropout_by_hand", "active_learning_by_hand")
    d = synthetic("binary-class", n=120)
    net = cnn.build_model("compactresnet", 1, 2, 28)
    torch.manual_seed(derive_seed(3, "mc_dropout"))
    hand = ns["mc_dropout_by_hand"](net, normalize(d.val.images), 4).numpy()
    assert np.abs(hand - unc.mc_dropout(net, d.val, 4, "cpu", seed=3)).max() < 1e-6
    assert not net.training
    ns.update(info=d.info, K=2, rt=rt, active=active, evaluate=evaluate,
              run=SimpleNamespace(size=28, al_images=64, passes=3, device="cpu"))
    for query in ("bald", "coreset"):
        page = ns["active_learning_by_hand"](query, d.train, d.val, [4, 8, 12], 1)
        lib = rt.active_learning_curve(query, d.train, d.val, size=28, budget=1.0, images=64, passes=3, seed=1,
                                       device="cpu", sizes=[4, 8, 12])
        assert page["n_labels"] == lib["n_labels"] == [4, 8, 12]
        assert page["val_auc"] == lib["val_auc"] and page["share_per_class"] == lib["share_per_class"]

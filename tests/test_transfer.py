"""medlib.transfer and chapter 06's recipes: NT-Xent against a direct computation and lightly,
freezing, layer-wise learning rates, encoder checkpoints (round trip, tampering, wrong model),
SimCLR's step, label subsets, the encoder cache and the label-efficiency summary."""

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from medlib import transfer
from medlib.data.synthetic import synthetic
from medlib.models.cnn import CompactResNet
from medlib.recipes import transfer as rt
from medlib.recipes.classification import train_classifier
from medlib.train import Trainer, make_optimizer


def _z(n=6, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def nt_xent_direct(z1, z2, tau):
    """The SimCLR paper's formula, one term at a time (float64)."""
    z = torch.cat([z1, z2]).double()
    n2 = len(z)
    cos = lambda a, b: float(a @ b / (a.norm() * b.norm()))  # noqa: E731
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        den = sum(math.exp(cos(z[i], z[k]) / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(cos(z[i], z[j]) / tau) / den)
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_equals_direct_computation(tau):
    z1, z2 = _z()
    assert transfer.nt_xent(z1, z2, tau).item() == pytest.approx(nt_xent_direct(z1, z2, tau), rel=1e-5)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_equals_lightly(tau):
    lightly_loss = pytest.importorskip("lightly.loss")
    z1, z2 = _z(8, 16, seed=3)
    ref = lightly_loss.NTXentLoss(temperature=tau)(z1, z2)
    assert transfer.nt_xent(z1, z2, tau).item() == pytest.approx(ref.item(), rel=1e-5)


def test_nt_xent_prefers_matching_views():
    z1, _ = _z(8, 16)
    far = torch.randn(8, 16, generator=torch.Generator().manual_seed(9))
    assert transfer.nt_xent(z1, z1, 0.5) < transfer.nt_xent(z1, far, 0.5)


def _trained_like(seed=0, c=1, k=2):
    torch.manual_seed(seed)
    m = CompactResNet(c, k)
    with torch.no_grad():
        for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.1), bn.running_var.uniform_(0.5, 1.5)
    return m


def test_frozen_parameters_get_no_gradient_and_do_not_change():
    data = synthetic(n=64)
    m = _trained_like()
    frozen = transfer.freeze(m)  # the whole encoder: a linear probe
    enc_before = {k: v.clone() for k, v in m.state_dict().items() if not k.startswith("head.")}
    x = torch.randn(4, 1, 28, 28)
    m.train()
    m(x).sum().backward()
    assert all(p.grad is None for b in frozen for p in b.parameters())
    assert m.head.weight.grad is not None
    m.zero_grad()
    head_before = m.head.weight.clone()
    train_classifier(m, data.train, data.val, epochs=1, batch_size=16, seed=0, progress=False, lr=1e-2,
                     weight_decay=0.1)  # weight decay must not touch frozen weights either
    after = m.state_dict()
    for k, v in enc_before.items():  # weights and batch-norm statistics alike
        assert torch.equal(after[k], v), f"{k} changed although frozen"
    assert not torch.equal(m.head.weight, head_before)


def test_freeze_early_blocks_and_unfreeze():
    m = _trained_like()
    extra = transfer.prepare(m, "freeze_early", freeze_blocks=2)
    bs = transfer.blocks(m)
    assert extra == {}
    assert not any(p.requires_grad for b in bs[:2] for p in b.parameters())
    assert all(p.requires_grad for b in bs[2:] for p in b.parameters())
    transfer.prepare(m, "full")  # prepare() starts from an unfrozen model
    assert all(p.requires_grad for p in m.parameters())
    m.train()
    m(torch.randn(2, 1, 28, 28))
    assert all(mod.training for mod in m.modules())  # no block kept in eval mode after unfreezing
    with pytest.raises(ValueError, match="valid choices"):
        transfer.prepare(m, "partial")


def test_layerwise_learning_rates():
    m = _trained_like()
    extra = transfer.prepare(m, "layerwise", decay=0.5)
    scales = extra["lr_scales"]
    n = len(transfer.blocks(m))
    assert "head.weight" not in scales  # the head trains at the full rate
    assert scales["features.0.0.weight"] == pytest.approx(0.5 ** n)
    last = [k for k in scales if k.startswith(f"features.{n - 1}.")]
    assert all(scales[k] == pytest.approx(0.5) for k in last)
    opt = make_optimizer(m, "adamw", lr=1e-2, weight_decay=0.0, lr_scales=scales)
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs[-1] == pytest.approx(1e-2) and lrs[0] == pytest.approx(1e-2 * 0.5 ** n)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))


def test_optimizer_refuses_a_fully_frozen_model():
    m = _trained_like()
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        make_optimizer(m)


def test_checkpoint_round_trip_keeps_provenance_and_a_fresh_head(tmp_path):
    src = _trained_like(1, k=2)
    path = transfer.save_encoder(tmp_path / "enc.pt", src, {"source": "x", "seed": 1})
    dst = _trained_like(2, k=5)  # another task: five classes
    head = dst.head.weight.clone()
    meta = transfer.load_encoder(path, dst)
    assert meta["source"] == "x" and len(meta["sha256"]) == 64
    for k, v in src.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(dst.state_dict()[k], v)
    assert torch.equal(dst.head.weight, head)
    assert "head.weight" not in torch.load(path, weights_only=True)["state_dict"]


def test_tampered_or_foreign_checkpoints_are_refused(tmp_path):
    path = transfer.save_encoder(tmp_path / "enc.pt", _trained_like(), {"source": "x"})
    raw = bytearray(path.read_bytes())
    raw[-30] ^= 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(raw))
    (tmp_path / "bad.json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(transfer.CheckpointError, match="changed after it was saved"):
        transfer.load_encoder(bad, _trained_like())
    lone = tmp_path / "lone.pt"
    lone.write_bytes(path.read_bytes())
    with pytest.raises(transfer.CheckpointError, match="no provenance"):
        transfer.load_encoder(lone, _trained_like())
    wide = CompactResNet(1, 2, width=32)
    with pytest.raises(transfer.CheckpointError, match="does not fit"):
        transfer.load_encoder(path, wide)


def test_grey_encoder_goes_into_an_rgb_model(tmp_path):
    grey = _trained_like(c=1)
    path = transfer.save_encoder(tmp_path / "g.pt", grey, {})
    rgb = _trained_like(c=3)
    transfer.load_encoder(path, rgb)
    w1, w3 = grey.features[0][0].weight, rgb.features[0][0].weight
    assert w3.shape[1] == 3 and torch.allclose(w3.sum(1, keepdim=True), w1, atol=1e-6)
    x = torch.rand(2, 1, 28, 28) * 2 - 1  # the same grey image as RGB: the same features
    grey.eval(), rgb.eval()
    assert torch.allclose(transfer.embed(grey, x), transfer.embed(rgb, x.expand(-1, 3, -1, -1)), atol=1e-5)


def test_simclr_step_in_the_trainer_equals_the_step_by_hand():
    torch.manual_seed(0)
    net = transfer.SimCLR(CompactResNet(1, 2), 32, 16)
    twin = copy.deepcopy(net)
    aug = transfer.simclr_augment()
    batches = [(torch.rand(16, 1, 28, 28) * 2 - 1,) for _ in range(2)]
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(5)
    net.train()
    for (x,) in batches:
        loss = transfer.nt_xent(net(aug(x, g)), net(aug(x, g)), 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step = transfer.SimCLRStep(twin, aug, temperature=0.5, lr=1e-3, weight_decay=1e-4, schedule="constant",
                               warmup_epochs=0, seed=5)
    Trainer(step, epochs=1, progress=False).fit(batches)
    for a, b in zip(net.state_dict().values(), twin.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_simclr_pretraining_lowers_the_loss():
    data = synthetic(n=128)
    pool = transfer.unlabelled_pool([data.train], 1, data.info)
    torch.manual_seed(0)
    net = transfer.SimCLR(CompactResNet(1, 2, width=8), 32, 16)
    from medlib.data.batches import TensorLoader

    hist = Trainer(transfer.SimCLRStep(net, transfer.simclr_augment(), lr=3e-3, seed=0), epochs=4,
                   progress=False).fit(TensorLoader(pool, 64, shuffle=True, drop_last=True, seed=0))
    losses = [e["train_loss"] for e in hist.epochs]
    assert losses[-1] < losses[0] and losses[0] == pytest.approx(math.log(127), abs=0.6)


def test_simclr_augment_is_seeded_and_keeps_shape():
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    aug = transfer.simclr_augment()
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)


def test_label_subset_and_channels():
    data = synthetic("multi-class", n=200)
    sub = transfer.label_subset(data.train, 0.1, seed=0)
    assert len(sub) == 20 and (sub.class_counts() >= 1).all()
    tiny = transfer.label_subset(data.train, 0.001, seed=0)
    assert (tiny.class_counts() >= 1).all()  # every class keeps one labelled image
    assert transfer.label_subset(data.train, 1.0) is data.train
    for bad in (0, 1.5, -0.1, "0.1", True):
        with pytest.raises(ValueError, match="label_fraction"):
            transfer.label_subset(data.train, bad)
    grey = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    assert torch.equal(transfer.to_channels(grey, 3)[:, 2:], grey)
    assert torch.equal(transfer.to_channels(transfer.to_channels(grey, 3), 1), grey)


def test_imagenet_checkpoint_is_looked_up_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert transfer.imagenet_checkpoint("resnet18") is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"x")
    assert transfer.imagenet_checkpoint("resnet18").name == "resnet18-f37072fd.pth"


def test_probe_separates_a_learnable_task():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = rng.normal(size=(200, 4)) + y[:, None] * 2.0
    assert transfer.probe(x[:100], y[:100], x[100:], y[100:], "binary-class") > 0.95


class _Run:
    def __init__(self, tmp, reuse):
        self.params, self.dir, self.code = {"reuse": reuse}, tmp / "run", {"git_commit": "abc"}


def test_encoder_cache_reuses_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLIB_RUNS", str(tmp_path))
    calls = []

    def train_into(m):
        def go():
            calls.append(1)
            with torch.no_grad():
                m.features[0][0].weight.add_(1.0)
            return {"losses": [1.0]}
        return go

    prov = {"source": "x", "seed": 0}
    a = _trained_like(0)
    meta = rt.cached(_Run(tmp_path, False), "simclr", prov, a, train_into(a))
    assert not meta["reused"] and meta["losses"] == [1.0] and len(calls) == 1
    b = _trained_like(0)
    meta_b = rt.cached(_Run(tmp_path, True), "simclr", prov, b, train_into(b))
    assert meta_b["reused"] and len(calls) == 1 and torch.equal(b.features[0][0].weight, a.features[0][0].weight)
    c = _trained_like(0)  # another provenance: trained, not reused
    rt.cached(_Run(tmp_path, True), "simclr", {**prov, "seed": 1}, c, train_into(c))
    assert len(calls) == 2


def test_curve_summary_has_t_intervals_over_seeds():
    recs = []
    for seed, (s, f) in enumerate([(0.80, 0.85), (0.82, 0.88), (0.84, 0.91)]):
        for frac in (0.1, 1.0):
            recs.append({"params": {"label_fraction": frac, "strategy": "auto", "source": "auto", "epochs": None}, "seed": seed, "timestamp": str(seed), "source_chosen": "simclr",
                         "metrics": {"test": {"scratch_auc": s, "simclr_full_auc": f, "simclr_linear_probe_auc": 0.7}}})
    pts = rt.curve_points(recs)
    summ = rt.curve_summary(pts)
    row = summ[(summ.strategy == "from scratch") & (summ.fraction == 0.1)].iloc[0]
    half = 4.302653 * 0.02 / math.sqrt(3)  # t(0.975, 2) * std / sqrt(n)
    assert row["n"] == 3 and row["mean"] == pytest.approx(0.82) and row["hi"] - row["mean"] == pytest.approx(half, rel=1e-4)
    assert set(summ.strategy) == {"from scratch", "SimCLR, full", "full fine-tuning", "linear probe"}
    for r in recs:
        r["metrics"]["test"]["auc"] = r["metrics"]["test"]["simclr_full_auc"] + 0.1  # validation's choice
    summ = rt.curve_summary(rt.curve_points(recs))
    cmp = rt.compare_at(summ, 0.12)  # the nearest recorded fraction: 0.1
    assert cmp["fraction"] == 0.1 and cmp["overlap"] is False
    assert cmp["validation's choice"][0] == pytest.approx(0.98) and cmp["from scratch"][3] == 3
    assert rt.compare_at(summ, 0.1, "SimCLR, full", "full fine-tuning")["overlap"] is True
    pair = rt.paired_difference(rt.curve_points(recs), 0.1, "SimCLR, full", "from scratch")
    assert pair["differences"] == pytest.approx([0.05, 0.06, 0.07]) and pair["mean"] == pytest.approx(0.06)
    assert pair["hi"] - pair["mean"] == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-4)
    other = {**recs[0], "params": {**recs[0]["params"], "strategy": "linear_probe"}, "timestamp": "9"}
    assert len(rt.curve_points(recs + [other])) == len(rt.curve_points(recs))  # another setting: not on the curve


def test_pick_source_errors(tmp_path):
    with pytest.raises(ValueError, match="both"):
        rt.pick_source("breastmnist", "breastmnist", 28, tmp_path)
    with pytest.raises(ValueError, match="no other 2D"):
        rt.pick_source("auto", "breastmnist", 28, tmp_path)
    with pytest.raises(ValueError, match="not present"):
        rt.pick_source("pneumoniamnist", "breastmnist", 28, tmp_path)
    assert json.dumps(rt.FINETUNE)  # the recipe is plain data (recorded in provenance)


def test_chapter_parameters_are_checked_before_a_kernel_starts():
    from medlib.chapters import check, notebook_parameters, notebooks, parse_value

    params = notebook_parameters(notebooks()["06_transfer_learning"])
    defaults = {k: parse_value(v["default"]) for k, v in params.items()}
    assert {"source", "target", "strategy", "label_fraction", "epochs", "seed", "profile"} <= set(defaults)
    check("06_transfer_learning", {"target": "retinamnist", "strategy": "linear_probe", "label_fraction": 0.1}, defaults)
    with pytest.raises(ValueError, match="label_fraction"):
        check("06_transfer_learning", {"label_fraction": 2.0}, defaults)
    with pytest.raises(ValueError, match="valid choices"):
        check("06_transfer_learning", {"strategy": "partial"}, defaults)


def test_chapter_runs_with_an_rgb_target(data_root, tmp_path):
    """RetinaMNIST (RGB) takes the paths a grey target does not: a grey supervised source into an
    RGB model, grey pool images copied to RGB, features of a grey encoder for RGB images."""
    import subprocess
    import sys

    if not (data_root / "medmnist" / "retinamnist.npz").exists():
        pytest.skip("retinamnist.npz not present")
    out = subprocess.run([sys.executable, "-m", "medlib.cli", "run", "06_transfer_learning", "--profile", "smoke",
                          "-p", "target", "retinamnist", "-p", "strategy", "linear_probe", "-p", "label_fraction", "0.1",
                          "--runs", str(tmp_path), "--quiet"], capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "MEDLIB_DATA": str(data_root)})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rec = json.loads(next(tmp_path.glob("06_transfer_learning/*/results.json")).read_text())
    assert rec["dataset"] == "retinamnist" and rec["strategy_chosen"] == "linear_probe"
    assert {"auc", "acc", "scratch_auc"} <= set(rec["metrics"]["test"])

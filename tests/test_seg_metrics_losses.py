"""Hand-written segmentation metrics and losses agree with MONAI (and scikit-learn)."""

import warnings

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss, DiceLoss, FocalLoss, TverskyLoss
from monai.metrics import DiceMetric, HausdorffDistanceMetric, MeanIoU, compute_roc_auc
from sklearn.metrics import roc_auc_score

from medlib import losses as L
from medlib.metrics import segmentation as M


def blobs(n=4, h=40, w=36, seed=0):
    """Random binary maps with structure (thresholded smooth noise), (N, H, W) bool."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.nn.functional.interpolate(torch.rand(n, 1, h // 4, w // 4, generator=g), size=(h, w), mode="bilinear")
    return noise[:, 0] > 0.6


def onehot(x):  # (N, H, W) bool -> (N, 2, H, W) float, as MONAI expects
    x = x.float()
    return torch.stack([1 - x, x], 1)


@pytest.fixture
def pair():
    return blobs(seed=1), blobs(seed=2)


def test_dice_matches_monai(pair):
    p, t = pair
    ref = DiceMetric(include_background=False, reduction="none")(onehot(p), onehot(t))[:, 0]
    assert torch.allclose(M.dice(p, t).float(), ref, atol=1e-6)


def test_dice_empty_cases_match_monai():
    t = torch.zeros(2, 8, 8, dtype=torch.bool)
    p = t.clone()
    p[1, 2, 2] = True  # image 0: both empty; image 1: false positives only
    ref = DiceMetric(include_background=False, reduction="none", ignore_empty=False)(onehot(p), onehot(t))[:, 0]
    assert torch.equal(M.dice(p, t).float(), ref)
    assert M.dice(p, t).tolist() == [1.0, 0.0]


def test_iou_matches_monai(pair):
    p, t = pair
    ref = MeanIoU(include_background=False, reduction="none")(onehot(p), onehot(t))[:, 0]
    assert torch.allclose(M.iou(p, t).float(), ref, atol=1e-6)


def test_hd95_matches_monai(pair):
    p, t = pair
    ref = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")(onehot(p), onehot(t))[:, 0]
    assert torch.allclose(M.hd95(p, t).float(), ref, atol=1e-4)
    # a square shifted by 3 px: boundary-to-boundary distances are 0 to 3 px, and 14 of the
    # 36 boundary pixels of each square lie exactly 3 px from the other's boundary (> 5 %), so HD95 = 3
    a = torch.zeros(1, 30, 30, dtype=torch.bool)
    a[0, 5:15, 5:15] = True
    assert M.hd95(a, a.roll(3, dims=2)).item() == pytest.approx(3.0)


def test_hd95_empty_masks_vs_monai():
    """Empty prediction, empty truth, both empty: MONAI says NaN; we say inf, inf, NaN.
    Either way the image is undefined and summarize counts it instead of averaging it."""
    t = torch.zeros(4, 20, 20, dtype=torch.bool)
    p = t.clone()
    t[0, 4:9, 4:9] = True  # 0: the model predicts nothing on a non-empty truth
    p[1, 4:9, 4:9] = True  # 1: false positives on an empty truth
    # 2: both empty
    t[3, 4:9, 4:9] = True  # 3: a normal image
    p[3, 5:10, 4:9] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about the empty masks
        ref = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")(onehot(p), onehot(t))[:, 0]
    ours = M.hd95(p, t)
    assert torch.isnan(ref[:3]).all() and torch.isfinite(ref[3])
    assert ours[0] == float("inf") and ours[1] == float("inf") and torch.isnan(ours[2])
    assert ours[3].item() == pytest.approx(ref[3].item(), abs=1e-4)
    per, pooled = M.summarize(p.float(), t)
    assert pooled["hd95_undefined"] == 3
    assert pooled["hd95"] == pytest.approx(ours[3].item())  # the mean of the finite values only
    assert M.summarize(t.float(), t)[1]["hd95_undefined"] == 2  # only the empty truths (1, 2)


def test_sensitivity_without_foreground_is_one():
    t = torch.zeros(1, 8, 8, dtype=torch.bool)
    p = t.clone()
    p[0, :4] = True  # false positives only
    assert M.sensitivity(p, t).item() == 1.0
    assert M.specificity(p, t).item() == 0.5 and M.dice(p, t).item() == 0.0


@pytest.mark.parametrize("include_background", [False, True])
def test_dice_per_class_matches_monai(include_background):
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 3, (4, 8, 8), generator=g)
    t[0][t[0] == 2] = 1  # class 2 absent from image 0's truth
    p = torch.where(torch.rand(4, 8, 8, generator=g) < 0.7, t, torch.randint(0, 3, (4, 8, 8), generator=g))
    p[0][p[0] == 2] = 0  # ... and from its prediction: Dice 1
    p[1][p[1] == 2] = 1  # class 2 present in image 1's truth only: Dice 0

    def oh(x):
        return torch.nn.functional.one_hot(x, 3).movedim(-1, 1).float()

    ref = DiceMetric(include_background=include_background, reduction="none", ignore_empty=False)(oh(p), oh(t))
    ours = M.dice_per_class(p, t, 3, include_background=include_background)
    assert ours.shape == (4, 3 if include_background else 2)
    assert torch.allclose(ours.float(), ref, atol=1e-6)
    assert ours[0, -1] == 1.0 and ours[1, -1] == 0.0


def test_confusion_metrics_by_hand_and_fov(pair):
    p, t = pair
    c = M.confusion(p, t)
    assert torch.equal(c["tp"] + c["fp"] + c["fn"] + c["tn"], torch.full((4,), 40.0 * 36, dtype=torch.float64))
    sens = (p & t).flatten(1).sum(1) / t.flatten(1).sum(1)
    assert torch.allclose(M.sensitivity(p, t).float(), sens.float())
    fov = torch.zeros_like(p)
    fov[:, :20] = True
    acc_in = ((p == t) & fov).flatten(1).sum(1) / fov.flatten(1).sum(1)
    assert torch.allclose(M.accuracy(p, t, fov).float(), acc_in.float())
    spec = M.specificity(p, t, fov, pooled=True)
    neg = ~t & fov
    assert spec.item() == pytest.approx(((~p) & neg).sum().item() / neg.sum().item())


def test_auc_matches_sklearn_and_monai_with_ties():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(2, 30, 30, generator=g) > 0.7
    s = (t.float() * 0.3 + torch.rand(2, 30, 30, generator=g)).round(decimals=1)  # many ties
    fov = torch.rand(2, 30, 30, generator=g) > 0.2
    ref = roc_auc_score(t[fov].numpy(), s[fov].numpy())
    assert M.auc(s, t, fov) == pytest.approx(ref, abs=1e-10)
    assert M.auc(s, t) == pytest.approx(float(compute_roc_auc(s.flatten(), t.flatten().float())), abs=1e-6)
    assert M.auc(s, ~t) == pytest.approx(1 - M.auc(s, t), abs=1e-10)


def test_best_threshold_maximises_f1():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(1, 50, 50, generator=g) > 0.8
    s = (0.6 * t.float() + 0.5 * torch.rand(1, 50, 50, generator=g)).clamp(0, 1)
    th = M.best_threshold(s, t)
    f_best = M.dice(s >= th, t, pooled=True).item()
    for other in (0.2, 0.35, 0.5, 0.65, 0.8):
        assert f_best >= M.dice(s >= other, t, pooled=True).item() - 1e-9


def test_summarize_ranges(pair):
    p, t = pair
    per, pooled = M.summarize(p.float() * 0.8 + 0.1, t)
    for k in ("dice", "iou", "sens", "spec", "acc", "auc"):
        assert per[k].shape == (4,)
        assert 0 <= pooled[k] <= 1
    assert "f1" not in pooled and "f1" not in per  # one name per quantity: Dice is the F1 score
    assert pooled["hd95_undefined"] == int((~torch.isfinite(per["hd95"])).sum())


# ------------------------------------------------------------------------ losses
@pytest.fixture
def logits_target():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 16, 16, generator=g) * 2
    target = (torch.rand(3, 1, 16, 16, generator=g) > 0.7).float()
    return logits, target


def test_bce_matches_torch(logits_target):
    x, t = logits_target
    ref = torch.nn.functional.binary_cross_entropy_with_logits(x, t)
    assert torch.allclose(L.bce(x, t), ref, atol=1e-6)
    refw = torch.nn.functional.binary_cross_entropy_with_logits(x, t, pos_weight=torch.tensor(3.0))
    assert torch.allclose(L.bce(x, t, pos_weight=3.0), refw, atol=1e-6)


def test_soft_dice_matches_monai(logits_target):
    x, t = logits_target
    assert torch.allclose(L.soft_dice_loss(x, t), DiceLoss(sigmoid=True)(x, t), atol=1e-6)
    ref = DiceLoss(sigmoid=True, batch=True)(x, t)
    assert torch.allclose(L.soft_dice_loss(x, t, batch=True), ref, atol=1e-6)


def test_soft_dice_multiclass_matches_monai():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, 8, generator=g)
    y = torch.randint(0, 3, (2, 8, 8), generator=g)
    ref = DiceLoss(softmax=True, to_onehot_y=True)(x, y[:, None])
    assert torch.allclose(L.soft_dice_loss(x, y), ref, atol=1e-6)


def test_bce_dice_matches_monai_dicece(logits_target):
    x, t = logits_target
    ref = DiceCELoss(sigmoid=True)(x, t)
    assert torch.allclose(L.bce_dice(x, t), ref, atol=1e-6)


@pytest.mark.parametrize("gamma,alpha", [(2.0, None), (0.0, None), (1.5, 0.25)])
def test_focal_matches_monai(logits_target, gamma, alpha):
    x, t = logits_target
    ref = FocalLoss(gamma=gamma, alpha=alpha, use_softmax=False)(x, t)
    assert torch.allclose(L.focal_loss(x, t, gamma=gamma, alpha=alpha), ref, atol=1e-6)


@pytest.fixture
def logits_labels():  # multi-class: logits (B, K, H, W), integer labels (B, H, W)
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 8, 8, generator=g) * 2, torch.randint(0, 3, (2, 8, 8), generator=g)


@pytest.mark.parametrize("gamma,alpha", [(2.0, None), (0.0, None), (1.5, 0.25)])
def test_focal_multiclass_matches_monai(logits_labels, gamma, alpha):
    x, y = logits_labels
    ref = FocalLoss(gamma=gamma, alpha=alpha, use_softmax=True, to_onehot_y=True)(x, y[:, None])
    # MONAI also averages over the K class channels: its value is ours / K
    assert torch.allclose(L.focal_loss(x, y, gamma=gamma, alpha=alpha), 3 * ref, atol=1e-6)
    if alpha is not None:
        assert not torch.allclose(L.focal_loss(x, y, gamma=gamma), L.focal_loss(x, y, gamma=gamma, alpha=alpha))
    with pytest.raises(ValueError, match="alpha"):
        L.focal_loss(x, y, alpha=1.5)


def test_focal_gamma0_multiclass_is_cross_entropy(logits_labels):
    x, y = logits_labels
    assert torch.allclose(L.focal_loss(x, y, gamma=0.0), torch.nn.functional.cross_entropy(x, y), atol=1e-6)


@pytest.mark.parametrize("alpha,beta", [(0.3, 0.7), (0.7, 0.3)])
def test_tversky_multiclass_matches_monai(logits_labels, alpha, beta):
    x, y = logits_labels
    ref = TverskyLoss(softmax=True, to_onehot_y=True, alpha=alpha, beta=beta)(x, y[:, None])
    assert torch.allclose(L.tversky_loss(x, y, alpha, beta), ref, atol=1e-6)


def test_bce_dice_multiclass_matches_monai_dicece(logits_labels):
    x, y = logits_labels
    ref = DiceCELoss(softmax=True, to_onehot_y=True)(x, y[:, None])
    assert torch.allclose(L.bce_dice(x, y), ref, atol=1e-6)


def test_focal_gamma0_is_bce(logits_target):
    x, t = logits_target
    assert torch.allclose(L.focal_loss(x, t, gamma=0.0), L.bce(x, t), atol=1e-6)


@pytest.mark.parametrize("alpha,beta", [(0.3, 0.7), (0.5, 0.5), (0.7, 0.3)])
def test_tversky_matches_monai(logits_target, alpha, beta):
    x, t = logits_target
    ref = TverskyLoss(sigmoid=True, alpha=alpha, beta=beta)(x, t)
    assert torch.allclose(L.tversky_loss(x, t, alpha, beta), ref, atol=1e-6)


def test_tversky_half_is_dice(logits_target):
    x, t = logits_target
    assert torch.allclose(L.tversky_loss(x, t, 0.5, 0.5), L.soft_dice_loss(x, t), atol=1e-6)


def test_losses_fall_with_better_logits(logits_target):
    _, t = logits_target
    good, bad = (t * 2 - 1) * 4, -(t * 2 - 1) * 4
    for name, fn in L.LOSSES.items():
        assert fn(good, t) < fn(bad, t), name
        assert fn(good, t[:, 0]).shape == ()  # (B, H, W) targets work too


def test_make_loss_unknown_name():
    with pytest.raises(ValueError, match="valid choices"):
        L.make_loss("hinge")
    assert np.isfinite(L.make_loss("tversky")(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)).item())


def test_thin_structure_mask():
    t = torch.zeros(1, 12, 12, dtype=torch.bool)
    t[0, 2:9, 2:9] = True  # a thick square: survives the opening
    t[0, 10, :] = True  # a 1-pixel line: removed by the opening
    thin = M.thin_structure_mask(t)
    assert thin[0, 10].all() and not thin[0, 2:9, 2:9].any()


def test_as_record_names_one_quantity_one_way(pair):
    p, t = pair
    per, pooled = M.summarize(p.float() * 0.8 + 0.1, t)
    rec = M.as_record(per, pooled)
    assert rec["dice"] == pytest.approx(float(per["dice"].mean()))  # `dice` is the per-image mean
    assert rec["dice_pooled"] == pooled["dice"] and rec["auc_pooled"] == pooled["auc"]
    assert "f1" not in rec and "dice_per_image" not in rec
    assert rec["hd95_undefined"] == pooled["hd95_undefined"]

"""Chapter 11 (trust): calibration, temperature scaling, selective and conformal prediction
(medlib.metrics.calibration) against direct computations, torchmetrics and netcal; predictive
uncertainty and MC dropout (medlib.uncertainty, recipes.trust.head_mc_dropout); active-learning
queries against hand-built pools and baal, and a tiny active-learning run; image corruptions
(medlib.corruptions) against scipy and torchvision."""

import warnings

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn as nn
from scipy.ndimage import gaussian_filter
from scipy.optimize import minimize_scalar

from medlib import active, corruptions, uncertainty
from medlib.data import registry
from medlib.data.medmnist import Split
from medlib.data.synthetic import synthetic
from medlib.metrics import calibration as cal
from medlib.metrics import classification as mc
from medlib.models.cnn import build_model
from medlib.recipes import trust


def _draw_labels(p, rng):
    """One label per row drawn from the row's probabilities (a perfectly calibrated model)."""
    return (p.cumsum(1) > rng.random((len(p), 1))).argmax(1)


def _dirichlet_pool(n=5000, k=5, seed=0, conc=1.0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, conc), n)
    return p, _draw_labels(p, rng)


# ============================================================================ calibration
def test_ece_of_a_calibrated_predictor_is_near_zero():
    """Labels drawn from the predicted probabilities: ECE ≈ 0 (only the finite-sample bias,
    about sqrt(bins / N) / 2 ≈ 0.004 at N = 200 000), binary and multi-class."""
    rng = np.random.default_rng(0)
    n = 200_000
    p1 = rng.random(n)
    binary = np.stack([1 - p1, p1], 1)
    assert cal.ece((rng.random(n) < p1).astype(int), binary) < 0.01
    multi, y = _dirichlet_pool(n, 4, seed=1, conc=0.5)
    assert cal.ece(y, multi) < 0.01


def test_ece_of_an_overconfident_predictor_is_its_mean_gap():
    """True confidence c ~ U(0.5, 1) of the predicted class, reported c' = (1 + c) / 2 > c in
    every bin, so ECE = E[c' − c] = E[(1 − c) / 2] = 0.125 (up to sampling noise ~0.001)."""
    rng = np.random.default_rng(0)
    n = 200_000
    c = rng.uniform(0.5, 1, n)
    reported = (1 + c) / 2
    probs = np.stack([1 - reported, reported], 1)  # the model always predicts class 1
    y = (rng.random(n) < c).astype(int)  # ... which is right with probability c
    assert cal.ece(y, probs) == pytest.approx(0.125, abs=0.005)


@pytest.mark.parametrize("task,k", [(mc.BINARY, 2), (mc.MULTICLASS, 5), (mc.ORDINAL, 4)])
def test_ece_equals_classification_ece(task, k):
    """cal.ece is the same number as the metric tables' expected_calibration_error."""
    p, y = _dirichlet_pool(3000, k, seed=k)
    assert cal.ece(y[:, None], p) == pytest.approx(mc.expected_calibration_error(y[:, None], p, task), abs=1e-12)


def _off_edges(p, y, n_bins=15, gap=1e-6):
    """Keep images whose top confidence is not within `gap` of a bin edge: the libraries close
    their bins on different sides (medlib (a, b], torchmetrics and netcal [a, b)) and torchmetrics
    rounds confidences to float32, so they can only disagree on such images."""
    conf = p.max(1) * n_bins
    keep = np.abs(conf - np.round(conf)) > gap * n_bins
    return p[keep], y[keep]


def test_ece_equals_torchmetrics_multiclass():
    """torchmetrics' top-label MulticlassCalibrationError (15 bins, L1), K = 5.
    Definition differences: torchmetrics bins [a, b) with an extra bin for confidence exactly 1
    and casts confidences to float32; medlib bins (a, b] — equal off the edges, to ~1e-7."""
    from torchmetrics.classification import MulticlassCalibrationError

    p, y = _off_edges(*_dirichlet_pool(5000, 5, seed=3, conc=0.5))
    ref = MulticlassCalibrationError(num_classes=5, n_bins=15, norm="l1")(torch.tensor(p), torch.tensor(y))
    assert cal.ece(y, p) == pytest.approx(float(ref), abs=1e-6)


def test_ece_equals_netcal_multiclass():
    """netcal's ECE(bins=15) on (N, K) probabilities and (N,) labels (K ≥ 3 and more than two
    distinct labels: netcal treats labels with ≤ 2 values as binary and then bins p(class 1),
    not the top-class confidence). netcal bins [a, b) (last bin closed) and clips to
    [eps, 1 − eps]; off the edges it is the same number."""
    from netcal.metrics import ECE

    p, y = _off_edges(*_dirichlet_pool(5000, 5, seed=4, conc=0.5))
    assert cal.ece(y, p) == pytest.approx(ECE(bins=15).measure(p, y), abs=1e-9)


def test_bins_are_closed_on_the_right():
    """Bin b holds (b/n, (b+1)/n]; 0 goes to the first bin and 1 to the last."""
    edges = np.linspace(0, 1, 16)
    assert cal.bin_index(edges).tolist() == [0] + list(range(15))
    assert cal.bin_index(edges[1:] - 1e-9).tolist() == list(range(15))


def test_reliability_equals_direct_binning():
    p, y = _dirichlet_pool(2000, 3, seed=5)
    r = cal.reliability(y, p, n_bins=10)
    conf, correct = p.max(1), (p.argmax(1) == y)
    assert r["count"].sum() == len(y)
    for b in range(10):
        lo, hi = r["edges"][b], r["edges"][b + 1]
        m = (conf > lo) & (conf <= hi)
        assert r["count"][b] == m.sum()
        if m.any():
            assert r["confidence"][b] == pytest.approx(conf[m].mean(), abs=1e-12)
            assert r["accuracy"][b] == pytest.approx(correct[m].mean(), abs=1e-12)
        else:
            assert np.isnan(r["accuracy"][b])


def test_nll_and_brier_by_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]])
    y = np.array([[0], [2], [2]])
    # NLL: −(ln 0.7 + ln 0.1 + ln 0.5) / 3
    assert cal.nll(y, p) == pytest.approx((0.356675 + 2.302585 + 0.693147) / 3, abs=1e-6)
    # Brier: (0.09 + 0.04 + 0.01) + (0.01 + 0.64 + 0.81) + (0.04 + 0.09 + 0.25) = 1.98, / 3
    assert cal.brier(y, p) == pytest.approx(0.66, abs=1e-12)


# ---------------------------------------------------------------------------- temperature scaling
def _tempered(t_true=2.5, n=50_000, k=3, seed=0):
    rng = np.random.default_rng(seed)
    z = 3 * rng.standard_normal((n, k))
    return z, _draw_labels(cal.apply_temperature(z, t_true), rng)


def test_fit_temperature_recovers_the_true_temperature():
    z, y = _tempered()
    assert cal.fit_temperature(z, y) == pytest.approx(2.5, rel=0.05)


def test_fit_temperature_equals_scalar_minimisation():
    """The same optimum as scipy's bounded scalar search over T of the NLL."""
    z, y = _tempered(t_true=0.7, n=5000, k=4, seed=1)
    ref = minimize_scalar(lambda t: cal.nll(y, cal.apply_temperature(z, t)), bounds=(0.05, 20),
                          method="bounded", options={"xatol": 1e-8}).x
    assert cal.fit_temperature(z, y) == pytest.approx(ref, rel=1e-3)


def test_temperature_keeps_argmax_and_binary_auc():
    rng = np.random.default_rng(2)
    z = 2 * rng.standard_normal((2000, 2))
    y = (rng.random(2000) < cal.apply_temperature(z, 1.0)[:, 1]).astype(int)
    p1, p3 = cal.apply_temperature(z, 1.0), cal.apply_temperature(z, 3.0)
    assert (p1.argmax(1) == p3.argmax(1)).all()
    assert not np.allclose(p1, p3)  # ... although the probabilities do change
    assert mc.auc(y, p3, mc.BINARY) == pytest.approx(mc.auc(y, p1, mc.BINARY), abs=1e-12)


def test_fit_temperature_rejects_bad_shapes():
    with pytest.raises(ValueError):
        cal.fit_temperature(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError):
        cal.fit_temperature(np.zeros((5, 3)), np.zeros(4))


# ---------------------------------------------------------------------------- selective prediction
def test_risk_coverage_by_hand():
    correct = np.array([1, 0, 1, 1, 0])
    unc = np.array([0.1, 0.5, 0.3, 0.2, 0.05])
    # kept in the order 4 (wrong), 0, 3, 2, 1 (wrong): risks 1/1, 1/2, 1/3, 1/4, 2/5
    cov, risk = cal.risk_coverage(correct, unc)
    assert cov == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert risk == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 2 / 5])
    assert cal.aurc(correct, unc) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4 + 2 / 5) / 5)
    assert cal.accuracy_at_coverage(correct, unc, 0.6) == pytest.approx(2 / 3)


def test_oracle_uncertainty_has_zero_risk_until_coverage_equals_accuracy():
    rng = np.random.default_rng(0)
    correct = (rng.random(1000) < 0.8).astype(float)
    oracle = 1 - correct + 0.01 * rng.random(1000)  # every error more uncertain than any hit
    cov, risk = cal.risk_coverage(correct, oracle)
    n_ok = int(correct.sum())
    assert (risk[:n_ok] == 0).all() and (risk[n_ok:] > 0).all()
    assert cov[n_ok - 1] == pytest.approx(correct.mean())
    random_order = rng.random(1000)
    assert cal.aurc(correct, oracle) < cal.aurc(correct, random_order) - 0.1


def test_accuracy_at_coverage_keeps_exactly_the_share():
    """7 % of 100 images is 7 images, although 0.07 * 100 = 7.000000000000001 in floating point."""
    correct = np.r_[np.ones(7), 0, np.ones(92)]
    unc = np.arange(100.0)  # the 8th most certain image is the only error
    assert cal.accuracy_at_coverage(correct, unc, 0.07) == 1.0
    assert cal.accuracy_at_coverage(correct, unc, 0.08) == pytest.approx(7 / 8)


# ---------------------------------------------------------------------------- conformal prediction
def test_conformal_quantile_by_hand():
    s = [0.3, 0.1, 0.9, 0.5, 0.7, 0.2, 0.8, 0.4, 0.6]  # n = 9
    assert cal.conformal_quantile(s, 0.2) == 0.8  # ⌈10 · 0.8⌉ = 8th smallest
    assert cal.conformal_quantile(s, 0.1) == 0.9  # ⌈10 · 0.9⌉ = 9th
    assert cal.conformal_quantile(s, 0.05) == np.inf  # ⌈10 · 0.95⌉ = 10 > n
    for n, alpha in [(99, 0.1), (199, 0.05), (57, 0.2)]:
        scores = np.random.default_rng(n).random(n)
        k = int(np.ceil((n + 1) * (1 - alpha) - 1e-9))
        assert cal.conformal_quantile(scores, alpha) == np.sort(scores)[k - 1]
    with pytest.raises(ValueError):
        cal.conformal_quantile(s, 1.0)


@pytest.mark.parametrize("score", ["lac", "aps"])
def test_conformal_coverage_on_exchangeable_data(score):
    """Split conformal covers 1 − α on average; each split's coverage varies by
    sd² = k(n+1−k) / ((n+1)²(n+2)) (the Beta law of the calibrated quantile) + c(1−c)/n_eval."""
    p, y = _dirichlet_pool(2000, 5, seed=7)
    alpha, n = 0.1, 1000
    cov = cal.conformal_splits(p, y, alpha=alpha, n_cal=n, n_splits=200, score=score, seed=0)["coverage"]
    k = np.ceil((n + 1) * (1 - alpha))
    c = k / (n + 1)
    sd = np.sqrt(k * (n + 1 - k) / ((n + 1) ** 2 * (n + 2)) + c * (1 - c) / (len(y) - n))
    assert abs(cov.mean() - (1 - alpha)) < 0.015
    assert cov.min() >= 1 - alpha - 3 * sd


@pytest.mark.parametrize("score", ["lac", "aps"])
def test_prediction_set_holds_the_label_exactly_when_its_score_is_below_qhat(score):
    p, y = _dirichlet_pool(2000, 5, seed=8)
    s = cal.nonconformity(p, y, score, seed=3)
    for q in np.quantile(s, [0.1, 0.5, 0.9]):
        held = cal.prediction_sets(p, q, score, seed=3)[np.arange(len(y)), y]  # the same randomisation
        assert (held == (s <= q)).all()


def test_aps_sets_are_the_top_classes_up_to_qhat_and_nested():
    """APS: the classes in decreasing probability while the mass before them plus u times their own
    stays ≤ q̂ (u uniform, one per image)."""
    p, _ = _dirichlet_pool(500, 5, seed=9)
    order = np.argsort(-p, 1)
    cum = np.take_along_axis(p, order, 1).cumsum(1)
    prev = np.zeros(p.shape, bool)
    for q in (0.3, 0.6, 0.8, 0.95, 0.99):  # no cumulative mass within 1e-9 of q (summation order)
        assert np.abs(cum - q).min() > 1e-9
        sets = cal.prediction_sets(p, q, "aps")
        direct = np.zeros(p.shape, bool)
        ps = np.take_along_axis(p, order, 1)
        u = np.random.default_rng(0).random(len(p))[:, None]
        np.put_along_axis(direct, order, cum - ps + u * ps <= q, 1)
        assert (sets == direct).all()
        assert (sets >= prev).all() and sets.sum() > prev.sum()  # nested and growing
        prev = sets


def test_unknown_conformal_score_is_rejected():
    p, y = _dirichlet_pool(20, 3)
    for call in (lambda: cal.nonconformity(p, y, "raps"), lambda: cal.prediction_sets(p, 0.5, "raps"),
                 lambda: cal.conformal_splits(p, y, score="raps", n_splits=2)):
        with pytest.raises(ValueError, match="unknown conformal score"):
            call()


# ============================================================================ uncertainty
def test_entropy_of_uniform_and_one_hot():
    for k in (2, 5, 10):
        assert uncertainty.entropy(np.full(k, 1 / k)) == pytest.approx(np.log(k))
        assert uncertainty.entropy(np.eye(k)[1]) == pytest.approx(0, abs=1e-12)


def test_mutual_information():
    rng = np.random.default_rng(0)
    one = rng.dirichlet(np.ones(4), 6)
    assert uncertainty.mutual_information(np.stack([one] * 8)) == pytest.approx(np.zeros(6), abs=1e-12)
    s = rng.dirichlet(np.ones(4), (8, 6))  # passes that disagree
    mi = uncertainty.mutual_information(s)
    direct = scipy.stats.entropy(s.mean(0), axis=1) - scipy.stats.entropy(s, axis=2).mean(0)
    assert mi == pytest.approx(direct, abs=1e-12)
    assert (mi > 0.01).all()


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model("compactresnet", 1, 2, 28)  # dropout p = 0.1 before the head


def _split(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 2, (n, 1), generator=g)
    return Split(images, labels, registry.info("pneumoniamnist"), "val")


def test_dropout_on_needs_dropout():
    with pytest.raises(ValueError, match="dropout"):
        uncertainty.dropout_on(nn.Sequential(nn.Flatten(), nn.Linear(784, 2)))
    m = _model()
    m.dropout.p = 0.0
    with pytest.raises(ValueError, match="dropout"):
        uncertainty.dropout_on(m)


def test_mc_dropout_shapes_randomness_mode_and_seed():
    m, sp = _model(), _split()
    s = uncertainty.mc_dropout(m, sp, passes=4, seed=1)
    assert s.shape == (4, 8, 2)
    assert np.allclose(s.sum(-1), 1, atol=1e-6)
    assert not np.allclose(s[0], s[1])  # dropout was on
    assert not any(x.training for x in m.modules())  # back in eval mode
    assert np.array_equal(s, uncertainty.mc_dropout(m, sp, passes=4, seed=1))
    assert not np.array_equal(s, uncertainty.mc_dropout(m, sp, passes=4, seed=2))


def test_shift_by_hand():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    assert uncertainty.shift(x, 1, 0)[0, 0].tolist() == [[0, 1, 2], [0, 1, 2], [3, 4, 5]]  # down
    assert uncertainty.shift(x, 0, -1)[0, 0].tolist() == [[1, 2, 2], [4, 5, 5], [7, 8, 8]]  # left
    assert uncertainty.shift(x, -1, 1)[0, 0].tolist() == [[3, 3, 4], [6, 6, 7], [6, 6, 7]]  # up, right


def test_tta_identity_first_and_shapes():
    t = uncertainty.tta_transforms()
    assert list(t)[0] == "identity" and len(t) == 10  # (identity + 4 shifts) × (with, without flip)
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(t["identity"](x), x) and torch.equal(t["flip"](x), x.flip(-1))
    m, sp = _model(), _split()
    a = uncertainty.tta(m, sp, t)
    assert a.shape == (10, 8, 2)
    assert a[0] == pytest.approx(uncertainty.softmax(uncertainty.logits(m, sp)), abs=1e-12)
    assert not np.allclose(a[0], a[1])


def _dropout_model():
    """p = 0.5, a scaled head and a bias: logits of about ±3 that dropout spreads by about ±5, so
    that MC dropout visibly moves the mean prediction away from the plain one."""
    m = _model(3)
    m.dropout.p = 0.5
    with torch.no_grad():
        m.head.weight.mul_(300)
        m.head.bias.copy_(torch.tensor([1.0, -1.0]))
    return m.eval()


def test_embed_and_head_equal_the_model_logits():
    m, sp = _dropout_model(), _split()
    feats = trust.embed(m, sp, "cpu")
    with torch.no_grad():
        assert m.head(feats).numpy() == pytest.approx(uncertainty.logits(m, sp), rel=1e-5, abs=1e-4)


def test_head_mc_dropout_matches_full_mc_dropout():
    """Same distribution: the means over passes agree within their standard errors and the
    spreads within 25 %; the plain (no dropout) prediction lies outside that tolerance."""
    m, sp = _dropout_model(), _split()
    full = uncertainty.mc_dropout(m, sp, passes=100, seed=0)
    head = trust.head_mc_dropout(m, trust.embed(m, sp, "cpu"), passes=4000, seed=0)
    assert head.shape == (4000, 8, 2)
    se = np.sqrt(full.var(0) / len(full) + head.var(0) / len(head))
    assert (np.abs(full.mean(0) - head.mean(0)) / se).max() < 4.5
    assert full.std(0) == pytest.approx(head.std(0), rel=0.25)
    plain = uncertainty.softmax(uncertainty.logits(m, sp))
    assert (np.abs(plain - head.mean(0)) / se).max() > 4.5


def test_head_mc_dropout_keeps_the_mean_logit():
    """Inverted dropout (masks scaled by 1 / (1 − p)) keeps each feature's mean, and the head is
    linear, so the mean over passes of the logit z₁ − z₀ = log p₁ − log p₀ is the plain logit
    (a missing rescaling would halve it: ~25 standard errors)."""
    m, sp = _dropout_model(), _split()
    head = trust.head_mc_dropout(m, trust.embed(m, sp, "cpu"), passes=6000, seed=1)
    d = np.log(head[..., 1]) - np.log(head[..., 0])
    z = uncertainty.logits(m, sp)
    se = d.std(0) / np.sqrt(len(d))
    assert (np.abs(d.mean(0) - (z[:, 1] - z[:, 0])) / se).max() < 4.5


def test_head_mc_dropout_without_dropout_is_the_plain_prediction():
    m, sp = _dropout_model(), _split()
    m.dropout.p = 0.0
    head = trust.head_mc_dropout(m, trust.embed(m, sp, "cpu"), passes=3, seed=0)
    plain = uncertainty.softmax(uncertainty.logits(m, sp))
    assert head == pytest.approx(np.stack([plain] * 3), abs=1e-6)


# ============================================================================ active learning
# A pool of six (K = 4), positions: 0 confident; 1 smallest margin; 2 least confident;
# 3 most spread (highest entropy); 4 fairly confident; 5 second-highest entropy.
POOL = np.array([
    [0.90, 0.05, 0.03, 0.02],  # 0: 1 − max 0.10, margin 0.85, H 0.43
    [0.40, 0.39, 0.20, 0.01],  # 1: 1 − max 0.60, margin 0.01, H 1.10
    [0.35, 0.33, 0.32, 0.00],  # 2: 1 − max 0.65, margin 0.02, H 1.10 (less than 1)
    [0.37, 0.21, 0.21, 0.21],  # 3: 1 − max 0.63, margin 0.16, H 1.35
    [0.65, 0.25, 0.05, 0.05],  # 4: 1 − max 0.35, margin 0.40, H 0.93
    [0.50, 0.20, 0.20, 0.10],  # 5: 1 − max 0.50, margin 0.30, H 1.22
])


@pytest.mark.parametrize("query,expected", [
    ("least_confidence", [2, 3, 1, 5, 4, 0]),
    ("margin", [1, 2, 3, 5, 4, 0]),
    ("entropy", [3, 5, 1, 2, 4, 0]),
])
def test_score_queries_pick_by_hand(query, expected):
    assert active.select(query, 2, 6, probs=POOL).tolist() == expected[:2]
    assert active.select(query, 6, 6, probs=POOL).tolist() == expected


def test_bald_prefers_disagreement_to_consistent_doubt():
    """Item 0 is 50/50 in every pass (highest entropy, MI 0); item 1 flips between two confident
    answers (MI high); item 2 is confidently the same in every pass."""
    s = np.array([[[0.5, 0.5], [0.95, 0.05], [0.9, 0.1]]] * 3 + [[[0.5, 0.5], [0.05, 0.95], [0.9, 0.1]]])
    assert s.shape == (4, 3, 2)
    assert active.select("entropy", 1, 3, probs=s.mean(0)).tolist() == [0]
    assert active.select("bald", 1, 3, samples=s).tolist() == [1]
    assert active.informativeness("bald", samples=s)[[0, 2]] == pytest.approx([0, 0], abs=1e-12)


def test_coreset_takes_the_farthest_point_first():
    labelled = np.array([[0.0, 0.0]])
    pool = np.array([[1.0, 0.0], [5.0, 0.0], [0.0, 4.0], [5.0, 1.0]])
    # (5, 1) is farthest from (0, 0); then (0, 4): 4 from (0, 0) vs 1 for (1, 0) and (5, 0)
    assert active.select("coreset", 2, 4, features=pool, labelled_features=labelled).tolist() == [3, 2]
    assert active.k_center_greedy(pool, labelled, 3).tolist() == [3, 2, 0]  # a tie: the first


def test_random_query_is_seeded_without_repeats():
    a = active.select("random", 10, 30, seed=3)
    assert len(set(a.tolist())) == 10 and a.min() >= 0 and a.max() < 30
    assert np.array_equal(a, active.select("random", 10, 30, seed=3))
    assert not np.array_equal(a, active.select("random", 10, 30, seed=4))


def test_select_rejects_unknown_queries_and_missing_inputs():
    with pytest.raises(ValueError, match="unknown query 'bold'.*valid choices"):
        active.select("bold", 2, 6, probs=POOL)
    with pytest.raises(ValueError, match="needs samples"):
        active.select("bald", 2, 6, probs=POOL)
    with pytest.raises(ValueError, match="needs labelled_features"):
        active.select("coreset", 2, 6, features=POOL)
    with pytest.raises(ValueError, match="6 scores for a pool of 7"):
        active.select("margin", 2, 7, probs=POOL)
    with pytest.raises(ValueError, match="not a score-based query"):
        active.informativeness("random", probs=POOL)


@pytest.mark.parametrize("query,heuristic", [
    ("bald", "BALD"), ("entropy", "Entropy"), ("margin", "Margin"), ("least_confidence", "Certainty"),
])
def test_queries_rank_like_baal(query, heuristic):
    """baal takes predictions (N, K, S) with the passes LAST and returns the full ranking, most
    informative first. Its Entropy, Margin and Certainty average the passes first (so medlib gets
    the mean probabilities); Margin and Certainty sort ascending (reverse=False) = medlib's
    −margin and 1 − max sorted descending. shuffle_prop is deprecated and 0 by default in baal 2.x,
    so its ranking is deterministic. No ties in a random pool."""
    from baal.active import heuristics as h

    rng = np.random.default_rng(0)
    s = rng.dirichlet(np.full(4, 0.7), (10, 50))  # (S, N, K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(h, heuristic)()(np.transpose(s, (1, 2, 0)))
    ours = active.select(query, 50, 50, probs=s.mean(0), samples=s)
    assert ours.tolist() == list(ref)


def test_labels_to_reach():
    n = [10, 20, 40, 80]
    assert active.labels_to_reach(n, [0.5, 0.85, 0.7, 0.9], 0.8) == 20  # the first crossing
    assert active.labels_to_reach(n, [0.5, 0.6, 0.7, 0.9], 0.9) == 80  # reaching counts
    assert np.isnan(active.labels_to_reach(n, [0.5, 0.6, 0.7, 0.9], 0.95))


def test_initial_labels():
    a = active.initial_labels(100, 10, seed=1)
    assert len(a) == 10 and len(np.unique(a)) == 10 and (np.diff(a) > 0).all()
    assert np.array_equal(a, active.initial_labels(100, 10, seed=1))
    assert not np.array_equal(a, active.initial_labels(100, 10, seed=2))
    for bad in (0, 101):
        with pytest.raises(ValueError, match="1..100"):
            active.initial_labels(100, bad)


def test_al_sizes():
    assert trust.al_sizes(1000, 0.1) == [10, 20, 30, 50, 75, 100]
    assert trust.al_sizes(200, 0.03) == [2, 4, 6]
    assert trust.al_sizes(100, 0.02) == [2]  # at least 2 labels, no repeated size
    for bad in (0.005, 1.5):
        with pytest.raises(ValueError, match="label budget"):
            trust.al_sizes(1000, bad)


@pytest.fixture(scope="module")
def al_data():
    """200 synthetic 28 px images, class 1 a bright square (medlib.data.synthetic)."""
    d = synthetic("binary-class", n=200, seed=0)
    return d.train, Split(d.val.images[:64], d.val.labels[:64], d.info, "val")


def _curve(query, train, val, seed=0):
    c = trust.active_learning_curve(query, train, val, size=28, budget=0.03, images=200, passes=3, seed=seed,
                                    device="cpu")
    return {k: v for k, v in c.items() if k != "seconds"}


def test_active_learning_curve_end_to_end_and_reproducible(al_data):
    train, val = al_data
    curve = _curve("bald", train, val)
    assert curve["n_labels"] == trust.al_sizes(200, 0.03) == [2, 4, 6]
    assert all(len(v) == 3 for v in curve.values())
    assert all(0 <= a <= 1 for a in curve["val_auc"] + curve["val_acc"])
    assert all(sum(s) == pytest.approx(1) for s in curve["share_per_class"])
    assert _curve("bald", train, val) == curve  # the same seed, the same curve


# ============================================================================ corruptions
def _textured(channels=1, size=28):
    """Two images: smooth gradients plus a 3 px checkerboard (and its mirror image); RGB
    channels are scaled copies, so that the picture is mostly luminance."""
    yy, xx = np.mgrid[0:size, 0:size]
    base = 0.2 + 0.3 * xx / (size - 1) + 0.2 * yy / (size - 1) + 0.2 * ((yy // 3 + xx // 3) % 2)
    im = np.stack([base * f for f in (1.0, 0.85, 0.7)[:channels]])
    return torch.from_numpy((np.stack([im, np.flip(im, 2)]) * 255).round().astype(np.uint8))


def _mse(a, b):
    return float(((a.float() - b.float()) ** 2).mean())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", corruptions.KINDS)
def test_corruption_identity_shape_and_dtype(kind, channels):
    x = _textured(channels)
    assert torch.equal(corruptions.corrupt(x, kind, 0), x)
    for s in (1, 5):
        out = corruptions.corrupt(x, kind, s)
        assert out.shape == x.shape and out.dtype == torch.uint8
        assert not torch.equal(out, x)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", corruptions.KINDS)
def test_corruption_grows_with_severity(kind, channels):
    x = _textured(channels)
    m1, m3, m5 = (_mse(corruptions.corrupt(x, kind, s), x) for s in (1, 3, 5))
    assert 0 < m1 < m3 < m5


def test_noise_is_seeded():
    x = _textured()
    a = corruptions.corrupt(x, "noise", 3, seed=1)
    assert torch.equal(a, corruptions.corrupt(x, "noise", 3, seed=1))
    assert not torch.equal(a, corruptions.corrupt(x, "noise", 3, seed=2))


def test_contrast_keeps_the_mean():
    x = _textured(3)
    for s in (1, 3, 5):
        out = corruptions.corrupt(x, "contrast", s).float()
        assert (out.mean((1, 2, 3)) - x.float().mean((1, 2, 3))).abs().max() <= 1
        assert out.std() < x.float().std()


def test_pixelate_is_a_box_filter_down_and_up():
    """An image of 2x2 blocks pixelated to half its size comes back unchanged (box averages of
    constant blocks), and a 1-px checkerboard becomes flat grey."""
    blocks = torch.arange(16, dtype=torch.uint8).view(4, 4).repeat_interleave(2, 0).repeat_interleave(2, 1) * 10
    assert torch.equal(corruptions.pixelate(blocks[None, None], 4), blocks[None, None])
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None]) % 2 * 200).to(torch.uint8)
    assert (corruptions.pixelate(checker[None, None], 4).float() - 100).abs().max() <= 1


def test_corrupt_rejects_bad_arguments():
    x = _textured()
    with pytest.raises(ValueError, match="unknown corruption"):
        corruptions.corrupt(x, "fog", 1)
    for s in (-1, 6):
        with pytest.raises(ValueError, match="severity"):
            corruptions.corrupt(x, "noise", s)
    with pytest.raises(ValueError, match="uint8"):
        corruptions.corrupt(x.float(), "noise", 1)
    with pytest.raises(ValueError, match="uint8"):
        corruptions.corrupt(x[0], "noise", 1)


@pytest.mark.parametrize("sigma", [0.5, 0.75, 1.0, 2.0])
def test_blur_equals_scipy_and_torchvision(sigma):
    """The same truncated Gaussian (radius ⌈3σ⌉) over the whole image, borders included:
    torch's 'reflect' padding is scipy's 'mirror' (the edge pixel is not repeated) and
    torchvision's gaussian_blur. scipy's own radius would be int(truncate·σ + 0.5), so it is
    passed explicitly."""
    import torchvision.transforms.functional as tvf

    x = _textured(3).float() / 255
    r = max(1, int(np.ceil(3 * sigma)))
    ours = corruptions.blur(x, sigma)
    ref = np.stack([[gaussian_filter(c.astype(np.float64), sigma, mode="mirror", radius=r) for c in im]
                    for im in x.numpy()])
    assert ours.numpy() == pytest.approx(ref, abs=1e-5)
    assert torch.allclose(ours, tvf.gaussian_blur(x, [2 * r + 1] * 2, [sigma, sigma]), atol=1e-5)

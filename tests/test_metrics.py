import numpy as np
import pytest
from medmnist.evaluator import getACC, getAUC
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion

from medlib.metrics import classification as C


def _case(task, n=300, k=4, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    if task == C.MULTILABEL:
        y = (rng.random((n, k)) < 0.3).astype(int)
        s = np.clip(y * 0.3 + rng.random((n, k)) * 0.7, 0, 1)
    else:
        k = 2 if task == C.BINARY else k
        y = rng.integers(0, k, (n, 1))
        logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y[:, 0]]
        s = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    if ties:
        s = np.round(s, 1)
    return y, s


@pytest.mark.parametrize("task", [C.BINARY, C.MULTICLASS, C.MULTILABEL, C.ORDINAL])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_acc_auc_equal_medmnist_evaluator(task, ties, seed):
    y, s = _case(task, k=5 if task == C.ORDINAL else 4, seed=seed, ties=ties)
    assert C.auc(y, s, task) == pytest.approx(getAUC(y, s, task), abs=1e-12)
    assert C.acc(y, s, task) == pytest.approx(getACC(y, s, task), abs=1e-12)


def test_binary_accepts_one_column_scores():
    y, s = _case(C.BINARY)
    assert C.auc(y, s[:, 1], C.BINARY) == pytest.approx(getAUC(y, s, C.BINARY))
    assert C.acc(y, s[:, 1], C.BINARY) == pytest.approx(getACC(y, s, C.BINARY))


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        C.binary_auc(np.ones(5), np.random.rand(5))


def test_confusion_f1_balanced_accuracy_match_sklearn():
    y, s = _case(C.MULTICLASS, k=4)
    pred = s.argmax(1)
    cm = C.confusion_matrix(y[:, 0], pred, 4)
    assert (cm == sk_confusion(y[:, 0], pred, labels=range(4))).all()
    m = C.classification_metrics(y, s, C.MULTICLASS, 4)
    assert m["f1"] == pytest.approx(f1_score(y[:, 0], pred, average="macro"))
    assert m["bacc"] == pytest.approx(balanced_accuracy_score(y[:, 0], pred))


def test_binary_sensitivity_specificity_by_hand():
    y = np.array([[1], [1], [1], [0], [0]])
    s = np.array([0.9, 0.8, 0.2, 0.7, 0.1])
    m = C.classification_metrics(y, s, C.BINARY, 2)
    assert m["sens"] == pytest.approx(2 / 3) and m["spec"] == pytest.approx(1 / 2)


def test_quadratic_kappa_and_mae_for_ordinal():
    y, s = _case(C.ORDINAL, k=5)
    pred = s.argmax(1)
    assert C.quadratic_kappa(y[:, 0], pred, 5) == pytest.approx(
        cohen_kappa_score(y[:, 0], pred, weights="quadratic"))
    m = C.classification_metrics(y, s, C.ORDINAL, 5)
    assert m["mae"] == pytest.approx(np.abs(pred - y[:, 0]).mean())


def test_ece_known_values():
    # all predictions at confidence 0.8; 80% right -> perfectly calibrated; 50% right -> ECE 0.3
    y = np.array([1] * 8 + [0] * 2)[:, None]
    s = np.full(10, 0.8)
    assert C.expected_calibration_error(y, s, C.BINARY) == pytest.approx(0.0)
    y = np.array([1] * 5 + [0] * 5)[:, None]
    assert C.expected_calibration_error(y, s, C.BINARY) == pytest.approx(0.3)
    yl, sl = _case(C.MULTILABEL)
    assert 0 <= C.expected_calibration_error(yl, sl, C.MULTILABEL) <= 1


def test_bootstrap_ci_brackets_the_estimate_and_is_reproducible():
    y, s = _case(C.BINARY, n=400)
    f = lambda a, b: C.auc(a, b, C.BINARY)  # noqa: E731
    lo, hi = C.bootstrap_ci(f, y, s, n=200, seed=0)
    assert lo < f(y, s) < hi and hi - lo < 0.15
    assert (lo, hi) == C.bootstrap_ci(f, y, s, n=200, seed=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_bootstrap_ci_equals_scipy_percentile_bootstrap(seed):
    """Our percentile bootstrap against scipy.stats.bootstrap(method="percentile") on the same
    statistic: the intervals agree to within the Monte-Carlo noise of 2000 resamples."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    ours = C.bootstrap_ci(lambda a, b: C.binary_auc(a, b), y, s, n=2000, seed=seed)
    ref = bootstrap((y, s), lambda a, b: C.binary_auc(a, b), paired=True, vectorized=False, n_resamples=2000,
                    method="percentile", random_state=seed).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.01) and ours[1] == pytest.approx(ref.high, abs=0.01)
    wide = ref.high - ref.low
    assert 0.05 < wide < 0.2  # a real interval, so the comparison can fail


def test_ece_is_near_zero_for_a_calibrated_predictor_and_large_for_an_overconfident_one():
    """Labels drawn as Bernoulli(p): the predictor p is calibrated by construction."""
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(200_000) < p).astype(int)
    calibrated = C.expected_calibration_error(y, np.stack([1 - p, p], 1), "binary-class")
    sharp = 1 / (1 + (1 / p - 1) ** 3)  # sigmoid(3 logit p): the same ranking, pushed towards 0 and 1
    over = C.expected_calibration_error(y, np.stack([1 - sharp, sharp], 1), "binary-class")
    assert calibrated < 0.005 and over > 0.1
    assert C.auc(y, sharp, "binary-class") == pytest.approx(C.auc(y, p, "binary-class"), abs=1e-12)

"""Calibration, selective prediction and conformal prediction sets for single-label classifiers.

- calibration: `reliability` (the data of a reliability diagram), `ece` (15 bins, the
  top-class confidence; the same definition as `classification.expected_calibration_error`,
  which medmnist-style metric tables use), `nll`, `brier`;
- temperature scaling: `fit_temperature` (one T > 0 minimising the NLL of `logits / T`;
  argmax and AUC cannot change), `apply_temperature`;
- selective prediction: `risk_coverage` (error rate on the kept images when the model may
  abstain on its least certain ones) and `aurc`;
- conformal prediction: `conformal_quantile`, `prediction_sets` (LAC or APS scores) and
  `conformal_splits` (empirical coverage over many random calibration / evaluation splits).

Inputs are numpy arrays: probabilities (N, K) that sum to 1, labels (N,) or (N, 1) class ids.
Explained in chapter 11.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SCORES = ("lac", "aps")


def _labels(y) -> np.ndarray:
    y = np.asarray(y)
    return (y[:, 0] if y.ndim == 2 else y).astype(np.int64)


def _probs(p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be (N, K), got shape {p.shape}")
    return p


def top_confidence(y, probs) -> tuple[np.ndarray, np.ndarray]:
    """(confidence of the predicted class, 1.0 where the prediction is right) per image.
    Binary: the prediction is p(positive) > 0.5, as ACC uses."""
    p, y = _probs(probs), _labels(y)
    pred = (p[:, 1] > 0.5).astype(np.int64) if p.shape[1] == 2 else p.argmax(1)
    return p[np.arange(len(p)), pred], (pred == y).astype(np.float64)


def bin_index(conf: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """Equal-width bins of [0, 1]; bin b holds (b/n, (b+1)/n], bin 0 also holds 0."""
    edges = np.linspace(0, 1, n_bins + 1)
    return np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)


def reliability(y, probs, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per bin: `count`, mean `confidence`, `accuracy` (NaN where empty), and the `edges`."""
    conf, correct = top_confidence(y, probs)
    idx = bin_index(conf, n_bins)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(idx, conf, n_bins) / count
        accuracy = np.bincount(idx, correct, n_bins) / count
    return {"edges": np.linspace(0, 1, n_bins + 1), "count": count, "confidence": confidence, "accuracy": accuracy}


def ece(y, probs, n_bins: int = 15) -> float:
    """Expected calibration error: Σ_b (n_b / N) |accuracy_b − confidence_b| over equal-width bins."""
    r = reliability(y, probs, n_bins)
    m = r["count"] > 0
    return float(np.sum(r["count"][m] / r["count"].sum() * np.abs(r["accuracy"][m] - r["confidence"][m])))


def nll(y, probs, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true class."""
    p, y = _probs(probs), _labels(y)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(p)), y], eps, 1.0))))


def brier(y, probs) -> float:
    """Multi-class Brier score: mean over images of Σ_k (p_k − 1[y = k])²  (0 best, 2 worst)."""
    p, y = _probs(probs), _labels(y)
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, 1)))


# ----------------------------------------------------------------------------- temperature scaling
def apply_temperature(logits, t: float) -> np.ndarray:
    """softmax(logits / T) as a numpy array (N, K)."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    return (z / t).softmax(-1).numpy()


def fit_temperature(logits, y, max_iter: int = 100) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) on (validation) data:
    L-BFGS on log T, so T stays positive. Guo et al. (2017), "On calibration of modern
    neural networks"."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    t = torch.as_tensor(_labels(y))
    if z.ndim != 2 or len(z) != len(t):
        raise ValueError(f"logits (N, K) and labels (N,) expected, got {tuple(z.shape)} and {tuple(t.shape)}")
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), t)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


# ----------------------------------------------------------------------------- selective prediction
def risk_coverage(correct, uncertainty) -> tuple[np.ndarray, np.ndarray]:
    """Keep the k most certain images, k = 1..N: (coverage k/N, risk = error rate on the k kept).
    Ties in `uncertainty` are broken by index (a stable sort)."""
    correct = np.asarray(correct, dtype=np.float64)
    order = np.argsort(np.asarray(uncertainty, dtype=np.float64), kind="stable")
    errors = np.cumsum(1 - correct[order])
    k = np.arange(1, len(correct) + 1)
    return k / len(correct), errors / k


def aurc(correct, uncertainty) -> float:
    """Area under the risk–coverage curve (the mean of the risks at k = 1..N; lower is better).
    An oracle that abstains on its errors first reaches the minimum for its error rate."""
    return float(np.mean(risk_coverage(correct, uncertainty)[1]))


def accuracy_at_coverage(correct, uncertainty, coverage: float) -> float:
    """Accuracy on the `coverage` share of images the model is most certain about."""
    cov, risk = risk_coverage(correct, uncertainty)
    k = max(1, int(np.ceil(round(coverage * len(cov), 9))))  # round: 0.07 * 100 = 7.000000000000001
    return float(1 - risk[k - 1])


# ----------------------------------------------------------------------------- conformal prediction
def _above(p: np.ndarray) -> np.ndarray:
    """(N, K): for each class, the total probability of the classes strictly more likely than it."""
    return np.sum(np.where(p[:, None, :] > p[:, :, None], p[:, None, :], 0.0), 2)


def nonconformity(probs, y, score: str = "lac", seed: int = 0) -> np.ndarray:
    """The score of the TRUE class per image: LAC 1 − p_y (Sadinle, Lei & Wasserman, 2019); APS
    (Romano, Sesia & Candès, 2020, randomised) the mass of the classes more likely than y plus a
    uniform random share u·p_y of its own (u from `seed`, one per image)."""
    p, y = _probs(probs), _labels(y)
    if score == "lac":
        return 1 - p[np.arange(len(p)), y]
    if score == "aps":
        u = np.random.default_rng(seed).random(len(p))
        return _above(p)[np.arange(len(p)), y] + u * p[np.arange(len(p)), y]
    raise ValueError(f"unknown conformal score {score!r}; valid: {', '.join(SCORES)}")


def conformal_quantile(scores, alpha: float) -> float:
    """q̂: the ⌈(n+1)(1−α)⌉-th smallest of n calibration scores (∞ when that exceeds n), so that a
    new exchangeable image's score is ≤ q̂ with probability ≥ 1 − α (Vovk; Angelopoulos & Bates)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    k = int(np.ceil((len(s) + 1) * (1 - alpha)))
    return float(np.inf) if k > len(s) else float(s[k - 1])


def prediction_sets(probs, qhat: float, score: str = "lac", seed: int = 0) -> np.ndarray:
    """Boolean (N, K): class k is in the set when the score it would get is ≤ q̂. LAC: 1 − p_k ≤ q̂
    (a set is empty when no class reaches 1 − q̂). APS: the classes in decreasing probability while
    their mass stays within q̂, the last one kept with a probability that makes the coverage exact
    (the same u per image as `nonconformity` with this seed)."""
    p = _probs(probs)
    if score == "lac":
        return 1 - p <= qhat
    if score == "aps":
        u = np.random.default_rng(seed).random(len(p))[:, None]
        return _above(p) + u * p <= qhat
    raise ValueError(f"unknown conformal score {score!r}; valid: {', '.join(SCORES)}")


def conformal_splits(probs, y, alpha: float = 0.1, n_cal: int | None = None, n_splits: int = 100,
                     score: str = "lac", seed: int = 0) -> dict[str, np.ndarray]:
    """Split conformal repeated over random calibration / evaluation splits of (probs, y): per
    split, the `coverage` (share of evaluation images whose set holds the true class) and the mean
    set `size`. `n_cal` defaults to half the images."""
    p, y = _probs(probs), _labels(y)
    n_cal = len(p) // 2 if n_cal is None else n_cal
    if not 0 < n_cal < len(p):
        raise ValueError(f"n_cal must be between 1 and {len(p) - 1}, got {n_cal}")
    rng = np.random.default_rng(seed)
    cov, size = np.empty(n_splits), np.empty(n_splits)
    for i in range(n_splits):
        perm = rng.permutation(len(p))
        cal, ev = perm[:n_cal], perm[n_cal:]
        s_cal, s_ev = rng.integers(2**31, size=2)  # the APS randomisation of each half
        q = conformal_quantile(nonconformity(p[cal], y[cal], score, seed=int(s_cal)), alpha)
        sets = prediction_sets(p[ev], q, score, seed=int(s_ev))
        cov[i], size[i] = sets[np.arange(len(ev)), y[ev]].mean(), sets.sum(1).mean()
    return {"coverage": cov, "size": size}

"""Pool-based active learning: which unlabelled images to send to the expert next.

- `QUERIES`: random, least confidence, entropy, BALD (mutual information under MC dropout),
  margin, and core-set (greedy k-centre on the model's features; a diversity method);
- `select(query, k, ...)`: the k pool positions a strategy asks for;
- `initial_labels`: the random starting set (the "cold start");
- `labels_to_reach`: how many labels a learning curve needs to reach a target.

The loop itself (label, train, score the pool, query, repeat) is written in chapter 11 and in
`medlib.recipes.trust.active_learning_curve`.
"""

from __future__ import annotations

import numpy as np

from medlib.uncertainty import entropy, mutual_information

QUERIES = ("random", "least_confidence", "margin", "entropy", "bald", "coreset")
NEEDS = {"random": (), "least_confidence": ("probs",), "margin": ("probs",), "entropy": ("probs",),
         "bald": ("samples",), "coreset": ("features", "labelled_features")}


def initial_labels(n_pool: int, n: int, seed: int = 0) -> np.ndarray:
    """`n` random pool positions, sorted (no labels are looked at: a cold start)."""
    if not 0 < n <= n_pool:
        raise ValueError(f"the initial labelled set must hold 1..{n_pool} images, got {n}")
    return np.sort(np.random.default_rng(seed).choice(n_pool, n, replace=False))


def informativeness(query: str, probs=None, samples=None) -> np.ndarray:
    """Higher = ask first. least_confidence: 1 − max p; margin: −(p₁ − p₂) of the two most likely
    classes; entropy: H(p); bald: the mutual information of MC-dropout samples (S, N, K)."""
    if query == "least_confidence":
        return 1 - np.asarray(probs).max(1)
    if query == "margin":
        top2 = np.sort(np.asarray(probs), 1)[:, -2:]
        return -(top2[:, 1] - top2[:, 0])
    if query == "entropy":
        return entropy(probs)
    if query == "bald":
        return mutual_information(samples)
    raise ValueError(f"{query!r} is not a score-based query; valid: least_confidence, margin, entropy, bald")


def k_center_greedy(features, labelled_features, k: int) -> np.ndarray:
    """Core-set selection (Sener & Savarese, 2018): k times, take the pool item farthest (Euclidean)
    from everything labelled or already chosen. features (N, D) of the pool, labelled (L, D)."""
    f = np.asarray(features, dtype=np.float64)
    lab = np.asarray(labelled_features, dtype=np.float64)
    sq = (f ** 2).sum(1)
    if len(lab):
        d = np.sqrt(np.maximum(sq[:, None] + (lab ** 2).sum(1)[None] - 2 * f @ lab.T, 0)).min(1)
    else:
        d = np.full(len(f), np.inf)
    chosen = []
    for _ in range(min(k, len(f))):
        i = int(np.argmax(d))
        chosen.append(i)
        d = np.minimum(d, np.sqrt(np.maximum(sq + sq[i] - 2 * f @ f[i], 0)))
        d[chosen] = -np.inf
    return np.array(chosen, dtype=np.int64)


def select(query: str, k: int, n_pool: int, *, probs=None, samples=None, features=None,
           labelled_features=None, seed: int = 0) -> np.ndarray:
    """The `k` pool positions (0..n_pool−1) strategy `query` asks the expert to label next.
    Ties are broken by position (a stable sort), so a selection is reproducible."""
    if query not in QUERIES:
        raise ValueError(f"unknown query {query!r}; valid choices: {', '.join(QUERIES)}")
    given = {"probs": probs, "samples": samples, "features": features, "labelled_features": labelled_features}
    missing = [n for n in NEEDS[query] if given[n] is None]
    if missing:
        raise ValueError(f"query {query!r} needs {', '.join(missing)}")
    k = min(k, n_pool)
    if query == "random":
        return np.random.default_rng(seed).choice(n_pool, k, replace=False)
    if query == "coreset":
        return k_center_greedy(features, labelled_features, k)
    score = informativeness(query, probs, samples)
    if len(score) != n_pool:
        raise ValueError(f"{len(score)} scores for a pool of {n_pool}")
    return np.argsort(-score, kind="stable")[:k]


def labels_to_reach(n_labels, values, target: float) -> float:
    """The first number of labels at which a learning curve reaches `target` (NaN if never)."""
    for n, v in zip(n_labels, values):
        if v >= target:
            return float(n)
    return float("nan")

"""Evaluating generated images without ImageNet weights: the Fréchet distance and KID in the
feature space of a classifier trained on the same dataset ("domain FID/KID", through
torchmetrics with that classifier as its feature extractor), precision and recall of
generative models (k-NN manifolds, Kynkäänniemi et al. 2019), memorisation (the nearest
training image of each sample) and diversity. Explained in chapter 04.

Images are float tensors (N, C, H, W) in [-1, 1] (the suite's Normalize(0.5, 0.5) scale).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch
import torch.nn as nn

from medlib.data.batches import to_uint8


class DomainFeatures(nn.Module):
    """A trained classifier's penultimate features as a torchmetrics feature extractor: images
    in [-1, 1] -> (B, D) pooled features (a CompactResNet's `pool(features(x))`, or `embed(x)`
    for a model that defines it). Eval mode, no gradients; `num_features` tells torchmetrics D."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.net = classifier.eval()  # its weights are only read (forward runs under no_grad)
        with torch.no_grad():
            ref = next(self.net.parameters())
            c = self._channels()
            self.num_features = int(self._embed(torch.zeros(1, c, 28, 28, device=ref.device)).shape[1])

    def _channels(self) -> int:
        first = next(m for m in self.net.modules() if isinstance(m, nn.Conv2d))
        return first.in_channels

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self.net, "embed"):
            return self.net.embed(x)
        return self.net.pool(self.net.features(x)).flatten(1)

    def train(self, mode: bool = True):  # torchmetrics may call .train(): the classifier stays in eval mode
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ref = next(self.net.parameters())
        return self._embed(x.to(ref.device, ref.dtype)).float()


@torch.no_grad()
def features(extractor: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """(N, D) features of `images` on the CPU, in batches."""
    return torch.cat([extractor(images[i:i + batch_size]).cpu() for i in range(0, len(images), batch_size)])


def frechet_distance(f1: np.ndarray | torch.Tensor, f2: np.ndarray | torch.Tensor) -> float:
    """The Fréchet distance of two Gaussians fitted to features (N1, D), (N2, D):
    |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), the matrix square root by scipy (direct)."""
    f1, f2 = (np.asarray(f, dtype=np.float64) for f in (f1, f2))
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    with warnings.catch_warnings():  # fewer images than features: a singular product, still the right value
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(s1 @ s2)
    root = root.real if np.iscomplexobj(root) else root  # tiny imaginary parts from round-off
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def _chunks(x: torch.Tensor, batch_size: int):
    return (x[i:i + batch_size] for i in range(0, len(x), batch_size))


def domain_fid(extractor: DomainFeatures, real: torch.Tensor, fake: torch.Tensor, batch_size: int = 512) -> float:
    """FID in the classifier's feature space, computed by torchmetrics' FrechetInceptionDistance
    with `extractor` as its network (images passed as floats: `normalize=True`)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=extractor, normalize=True)
    for x in _chunks(real, batch_size):
        fid.update(x, real=True)
    for x in _chunks(fake, batch_size):
        fid.update(x, real=False)
    return float(fid.compute())


def domain_kid(extractor: DomainFeatures, real: torch.Tensor, fake: torch.Tensor, *, subsets: int = 50,
               subset_size: int = 200, seed: int = 0, batch_size: int = 512) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski 2018) in the classifier's feature space, by
    torchmetrics: the unbiased MMD^2 with a cubic polynomial kernel, mean and sd over `subsets`
    random subsets of `subset_size` (capped at half the smaller set, so that the subsets differ
    and the sd means something). Unbiased: ~0 for equal distributions, whatever the sample size —
    unlike FID — so small negative values are noise."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = max(2, min(subset_size, len(real) // 2, len(fake) // 2))
    torch.manual_seed(seed)  # torchmetrics draws the subsets with the global generator
    with warnings.catch_warnings():  # "will save all extracted features": a few thousand 96-d vectors here
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=extractor, subsets=subsets, subset_size=size, normalize=True)
    for x in _chunks(real, batch_size):
        kid.update(x, real=True)
    for x in _chunks(fake, batch_size):
        kid.update(x, real=False)
    mean, sd = kid.compute()
    return float(mean), float(sd)


def _knn_radius(f: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    d = torch.cdist(f, f)
    return d.kthvalue(k + 1, dim=1).values  # the 1st smallest is the point itself (0)


def precision_recall(real_f: torch.Tensor, fake_f: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi 2019): each set's manifold is the union of
    balls around its points with radius = distance to the k-th nearest neighbour. Precision:
    the share of fakes inside the real manifold (fidelity); recall: the share of reals inside
    the fake manifold (coverage, diversity)."""
    real_f, fake_f = real_f.double(), fake_f.double()
    if min(len(real_f), len(fake_f)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points in each set")
    r_real, r_fake = _knn_radius(real_f, k), _knn_radius(fake_f, k)
    d = torch.cdist(fake_f, real_f)  # (n_fake, n_real)
    precision = (d <= r_real[None, :]).any(1).double().mean()
    recall = (d.T <= r_fake[None, :]).any(1).double().mean()
    return float(precision), float(recall)


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor, batch_size: int = 1024,
                      exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance from each query (flattened) to its nearest reference, and its index.
    `exclude_self`: queries are the reference set itself; skip the zero distance to oneself."""
    q, r = queries.flatten(1).double(), reference.flatten(1).double()
    dist, idx = [], []
    for i in range(0, len(q), batch_size):
        d = torch.cdist(q[i:i + batch_size], r)
        if exclude_self:
            d[torch.arange(len(d)), torch.arange(i, i + len(d))] = float("inf")
        m = d.min(1)
        dist.append(m.values)
        idx.append(m.indices)
    return torch.cat(dist), torch.cat(idx)


def memorisation(fake: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor) -> dict:
    """Are samples copies of training images? Pixel distances to the nearest training image,
    for the samples and for held-out real images (which the generator never saw: the
    reference). Quantised to uint8 first, as an image file would be. Returns the share of
    exact copies, the median distances, and the share of samples closer to a training image
    than the 1st percentile of held-out images is."""
    f, t, h = (to_uint8(v).float() for v in (fake, train, heldout))
    d_fake, idx = nearest_distances(f, t)
    d_held, _ = nearest_distances(h, t)
    q01 = float(torch.quantile(d_held, 0.01))
    return {"exact_copies": int((d_fake == 0).sum()), "median_fake": float(d_fake.median()),
            "median_heldout": float(d_held.median()), "closer_than_heldout_p01": float((d_fake < q01).double().mean()),
            "heldout_p01": q01, "distances": d_fake, "heldout_distances": d_held, "nearest": idx}


def diversity(f: torch.Tensor) -> float:
    """Mean pairwise Euclidean distance between feature vectors (N, D): falls when a generator
    collapses onto few modes."""
    d = torch.cdist(f.double(), f.double())
    n = len(f)
    return float(d.sum() / (n * (n - 1))) if n > 1 else 0.0

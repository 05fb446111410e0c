"""Predictive uncertainty of a classifier: logits and probabilities of a split, MC dropout,
test-time augmentation, deep ensembles, and the two numbers read from repeated predictions
(predictive entropy, mutual information). Explained in chapter 11.

Repeated predictions are arrays (S, N, K): S stochastic passes, augmentations or ensemble
members, N images, K classes. Their mean over S is the prediction.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from medlib.data.batches import TensorLoader
from medlib.env import derive_seed

METHODS = ("softmax", "mc_dropout", "tta", "ensemble")


@torch.no_grad()
def logits(model: nn.Module, split, device=None, batch_size: int = 512, transform=None) -> np.ndarray:
    """Logits (N, K) of a split in eval mode, fp32. `transform(x)` is applied to each
    normalised batch first (a test-time augmentation or a corruption)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    out = []
    for x, _ in TensorLoader(split, batch_size, device=device):
        out.append(model(transform(x) if transform is not None else x).float().cpu())
    return torch.cat(out).numpy()


def softmax(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def dropout_on(model: nn.Module) -> list[nn.Module]:
    """Eval mode except the dropout layers (batch norm keeps its running statistics).
    Returns the dropout modules; raises if the model has none (MC dropout needs them)."""
    model.eval()
    drops = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if not drops or all(m.p == 0 for m in drops):
        raise ValueError("MC dropout needs a model with dropout (p > 0); this model has none")
    for m in drops:
        m.train()
    return drops


@torch.no_grad()
def mc_dropout(model: nn.Module, split, passes: int = 20, device=None, seed: int = 0,
               batch_size: int = 512) -> np.ndarray:
    """MC dropout (Gal & Ghahramani, 2016): `passes` predictions with dropout left on,
    probabilities (S, N, K). The model is back in eval mode afterwards."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dropout_on(model)
    torch.manual_seed(derive_seed(seed, "mc_dropout"))
    out = []
    try:
        for _ in range(passes):
            ps = [model(x).float().softmax(-1).cpu() for x, _ in TensorLoader(split, batch_size, device=device)]
            out.append(torch.cat(ps))
    finally:
        model.eval()
    return torch.stack(out).numpy()


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate images by whole pixels, filling with the edge value (no wrap-around)."""
    h, w = x.shape[-2:]
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))
    xp = torch.nn.functional.pad(x, pad, mode="replicate")
    y0, x0 = max(-dy, 0), max(-dx, 0)
    return xp[..., y0:y0 + h, x0:x0 + w]


def tta_transforms(flip: bool = True, shifts: int = 2) -> dict[str, callable]:
    """The label-preserving test-time augmentations: identity, the horizontal flip (where the
    training recipe flips), and shifts of ±`shifts` px — each alone and with the flip."""
    moves = [(0, 0)] + ([(shifts, 0), (-shifts, 0), (0, shifts), (0, -shifts)] if shifts else [])
    out = {}
    for dy, dx in moves:
        name = "identity" if (dy, dx) == (0, 0) else f"shift({dy:+d},{dx:+d})"
        out[name] = (lambda x, dy=dy, dx=dx: shift(x, dy, dx))
        if flip:
            out[f"flip+{name}" if name != "identity" else "flip"] = (lambda x, dy=dy, dx=dx: shift(x.flip(-1), dy, dx))
    return out


def tta(model: nn.Module, split, transforms: dict | None = None, device=None) -> np.ndarray:
    """Probabilities (A, N, K) under each test-time augmentation."""
    transforms = transforms or tta_transforms()
    return np.stack([softmax(logits(model, split, device, transform=f)) for f in transforms.values()])


def ensemble(models, split, device=None) -> np.ndarray:
    """Probabilities (M, N, K) of each member of a deep ensemble (Lakshminarayanan et al., 2017)."""
    return np.stack([softmax(logits(m, split, device)) for m in models])


def entropy(p, eps: float = 1e-12) -> np.ndarray:
    """Shannon entropy (nats) of each row of probabilities (..., K)."""
    p = np.asarray(p, dtype=np.float64)
    return -np.sum(p * np.log(np.clip(p, eps, 1.0)), -1)


def mutual_information(samples) -> np.ndarray:
    """BALD's mutual information between the prediction and the model (Houlsby et al., 2011):
    H(mean_s p_s) − mean_s H(p_s), from repeated predictions (S, N, K). It is the part of the
    predictive entropy that comes from disagreement between passes (epistemic); ≥ 0."""
    s = np.asarray(samples, dtype=np.float64)
    return np.maximum(entropy(s.mean(0)) - entropy(s).mean(0), 0.0)

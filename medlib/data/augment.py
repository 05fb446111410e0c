"""Batched tensor augmentation for classification (2D): each op draws per-image parameters
and applies them to the whole batch at once. Explained in chapter 01.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _rand(n: int, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=g.device).to(device)


def random_flip(x: torch.Tensor, g: torch.Generator, p: float = 0.5, dim: int = -1) -> torch.Tensor:
    """Flip each image along `dim` with probability p. x: (B, C, H, W)."""
    flip = (_rand(len(x), g, x.device) < p).view(-1, *([1] * (x.ndim - 1)))
    return torch.where(flip, x.flip(dim), x)


def random_affine(
    x: torch.Tensor,
    g: torch.Generator,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """Random rotation, translation and scale per image, one `grid_sample` for the batch."""
    b = len(x)
    r = lambda: _rand(b, g, x.device)  # noqa: E731
    angle = (r() * 2 - 1) * math.radians(degrees)
    s = scale[0] + r() * (scale[1] - scale[0])
    tx, ty = (r() * 2 - 1) * translate * 2, (r() * 2 - 1) * translate * 2  # grid units [-1, 1]
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B,2,3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_intensity(x: torch.Tensor, g: torch.Generator, brightness=0.1, contrast=0.1) -> torch.Tensor:
    """Random brightness shift and contrast scale per image (x normalised to about [-1, 1])."""
    shape = (len(x),) + (1,) * (x.ndim - 1)
    b = ((_rand(len(x), g, x.device) * 2 - 1) * brightness * 2).view(shape)
    c = (1 + (_rand(len(x), g, x.device) * 2 - 1) * contrast).view(shape)
    mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
    return (x - mean) * c + mean + b


class Compose:
    """Chain augmentations: Compose([f1, f2])(x, g)."""

    def __init__(self, ops):
        self.ops = list(ops)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for op in self.ops:
            x = op(x, g)
        return x


def standard_2d(flip: bool = True, vflip: bool = False, degrees: float = 10.0, translate: float = 0.08,
                scale=(0.9, 1.1), intensity: float = 0.1) -> Compose:
    """The suite's default 2D recipe: flips, small affine jitter, brightness/contrast."""
    ops = []
    if flip:
        ops.append(lambda x, g: random_flip(x, g, dim=-1))
    if vflip:
        ops.append(lambda x, g: random_flip(x, g, dim=-2))
    if degrees or translate or scale != (1.0, 1.0):
        ops.append(lambda x, g: random_affine(x, g, degrees, translate, scale))
    if intensity:
        ops.append(lambda x, g: random_intensity(x, g, intensity, intensity))
    return Compose(ops)

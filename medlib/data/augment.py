"""Batched tensor augmentation: each op draws per-image parameters and applies them to the
whole batch at once, on the batch's device. Images alone for classification (chapter 01),
volumes (B, C, D, H, W) alike (`standard_3d`, chapter 02); images and their masks together
for segmentation (`augment_pair`, chapter 05).
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


def random_affine_3d(x: torch.Tensor, g: torch.Generator, degrees: float = 10.0, translate: float = 0.05,
                     scale: tuple[float, float] = (0.95, 1.05)) -> torch.Tensor:
    """Random small rotation (about each array axis in turn), shift and scale per volume, one
    3D `grid_sample` for the batch. x: (B, C, D, H, W)."""
    b, dev = len(x), x.device
    r = lambda: _rand(b, g, dev)  # noqa: E731
    rot = torch.eye(3, device=dev).repeat(b, 1, 1)
    for i, j in ((0, 1), (0, 2), (1, 2)):  # a rotation in each coordinate plane
        a = (r() * 2 - 1) * math.radians(degrees)
        m = torch.eye(3, device=dev).repeat(b, 1, 1)
        m[:, i, i], m[:, i, j], m[:, j, i], m[:, j, j] = a.cos(), -a.sin(), a.sin(), a.cos()
        rot = rot @ m
    s = (scale[0] + r() * (scale[1] - scale[0])).view(b, 1, 1)
    shift = (torch.stack([r(), r(), r()], 1) * 2 - 1) * translate * 2  # grid units [-1, 1]
    theta = torch.cat([rot / s, shift[:, :, None]], 2)  # (B, 3, 4)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def standard_3d(flips=(-1, -2, -3), degrees: float = 10.0, translate: float = 0.05, scale=(0.95, 1.05),
                intensity: float = 0.1) -> Compose:
    """The suite's 3D recipe for volumes (B, C, D, H, W): a random flip along each axis in
    `flips`, a small rotation/shift/scale, brightness/contrast. Shapes and labels are kept."""
    ops = [lambda x, g, d=d: random_flip(x, g, dim=d) for d in flips]
    if degrees or translate or scale != (1.0, 1.0):
        ops.append(lambda x, g: random_affine_3d(x, g, degrees, translate, scale))
    if intensity:
        ops.append(lambda x, g: random_intensity(x, g, intensity, intensity))
    return Compose(ops)


# ----------------------------------------------------------------------------- segmentation
def augment_pair(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    flips: bool = True,
    rot90: bool = True,
    affine: float = 0.0,
    elastic: float = 0.0,
    intensity: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random joint augmentation of a batch, one draw per image, all as tensor ops.

    x: float images (B, C, H, W); y: masks (B, H, W) (any dtype; resampled by nearest).
    flips: horizontal/vertical; rot90: multiples of 90° (square images only);
    affine: strength of a random rotation (±affine·30°) and scale (1 ± affine·0.15);
    elastic: displacement in pixels of a smooth random field (Simard 2003, coarse 8×8 noise
    upsampled); intensity: brightness/contrast jitter (± intensity) on standardised images.
    """
    b, _, h, w = x.shape
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device="cpu").to(dev)

    y = y.unsqueeze(1).float()  # (B, 1, H, W)
    if flips:
        fh, fv = rand(b) < 0.5, rand(b) < 0.5
        x = torch.where(fh.view(b, 1, 1, 1), x.flip(-1), x)
        y = torch.where(fh.view(b, 1, 1, 1), y.flip(-1), y)
        x = torch.where(fv.view(b, 1, 1, 1), x.flip(-2), x)
        y = torch.where(fv.view(b, 1, 1, 1), y.flip(-2), y)
    if rot90 and h == w:
        turn = rand(b) < 0.5  # transpose = rot90 combined with the flips above
        x = torch.where(turn.view(b, 1, 1, 1), x.transpose(-1, -2), x)
        y = torch.where(turn.view(b, 1, 1, 1), y.transpose(-1, -2), y)
    if affine > 0 or elastic > 0:
        theta = torch.zeros(b, 2, 3, device=dev)
        angle = (rand(b) * 2 - 1) * math.pi / 6 * affine
        scale = 1 + (rand(b) * 2 - 1) * 0.15 * affine
        theta[:, 0, 0], theta[:, 0, 1] = angle.cos() / scale, -angle.sin() / scale
        theta[:, 1, 0], theta[:, 1, 1] = angle.sin() / scale, angle.cos() / scale
        grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)  # (B, H, W, 2) in [-1, 1]
        if elastic > 0:
            noise = rand(b, 2, 8, 8) * 2 - 1  # coarse random displacements
            field = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False)
            scale_xy = torch.tensor([2 / w, 2 / h], device=dev).view(1, 2, 1, 1)
            grid = grid + (field * elastic * scale_xy).permute(0, 2, 3, 1)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        y = F.grid_sample(y, grid, mode="nearest", padding_mode="reflection", align_corners=False)
    if intensity > 0:
        gain = 1 + (rand(b, 1, 1, 1) * 2 - 1) * intensity
        shift = (rand(b, 1, 1, 1) * 2 - 1) * intensity
        x = x * gain + shift
    return x, y[:, 0]

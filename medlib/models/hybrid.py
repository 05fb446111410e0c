"""Hybrid models: convolutions where locality helps, attention where context does.

- `ConvStemViT`: chapter 07's ViT with its patch embedding replaced by a small convolutional
  stem (chapter 01's conv-BN-ReLU layers and residual blocks) that reduces the image to a grid
  of feature vectors; each grid cell is a token. The hybrid of Dosovitskiy et al. (2021, ResNet
  features as tokens) and Xiao et al. (2021, "Early convolutions help transformers see better").
- `TransUNet`: chapter 05's U-Net with a transformer at its bottleneck: the coarsest feature
  map becomes a sequence of tokens that attend to each other across the whole image, then the
  U-Net decoder (with its skips) upsamples as before (Chen et al. 2021, TransUNet, at CPU size).
  Positions are learned on a base grid and interpolated to the grid of any input size, as ViT
  does when it is fine-tuned at a higher resolution.

Fusion of network features with handcrafted ones (`medlib.features`) happens outside the
network (chapter 08, `medlib.recipes.hybrids`). Explained in chapter 08.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from medlib.models.cnn import ResBlock
from medlib.models.common import conv_bn_relu
from medlib.models.unet import UNet
from medlib.models.vit import Block, ViT


class ConvStem(nn.Module):
    """Image (B, C, S, S) -> tokens (B, N, D): conv-BN-ReLU at full resolution, then `stages`
    stride-2 conv-BN-ReLU + residual block, then a 1×1 convolution to D (a linear map of each
    grid cell's features). N = (S / 2^stages)^2; `grid` is S / 2^stages, as `PatchEmbed.grid`."""

    def __init__(self, in_channels: int, dim: int, size: int, width: int = 24, stages: int = 2):
        super().__init__()
        if size % 2**stages:
            raise ValueError(f"{stages} stride-2 stages need an image size divisible by {2**stages}, got {size}")
        layers, c = [conv_bn_relu(in_channels, width)], width
        for _ in range(stages):
            layers += [conv_bn_relu(c, 2 * c, stride=2), ResBlock(2 * c)]  # (B, 2c, S/2, S/2)
            c *= 2
        self.body = nn.Sequential(*layers)
        self.proj = nn.Conv2d(c, dim, 1)
        self.grid = size // 2**stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.body(x)).flatten(2).transpose(1, 2)  # (B, D, g, g) -> (B, N, D)


class ConvStemViT(ViT):
    """A ViT whose tokens come from a convolutional stem instead of linear patches.

    Defaults at 28 px: stem 24 -> 48 -> 96 channels down to a 7 × 7 grid (the grid of chapter
    07's ViT with 4-px patches), D = 96, 4 blocks of 4 heads: 0.57 M parameters. Chapter 08
    sizes it to chapter 01's CNN (width 16, 2 blocks: 0.28 M)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, size: int = 28, width: int = 24,
                 stages: int = 2, dim: int = 96, depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0,
                 drop_path: float = 0.1, dropout: float = 0.0):
        super().__init__(in_channels, num_classes, size, patch=2**stages, dim=dim, depth=depth, heads=heads,
                         mlp_ratio=mlp_ratio, drop_path=drop_path, dropout=dropout)
        self.patch_embed = ConvStem(in_channels, dim, size, width, stages)  # same grid, same positions


class TokenBottleneck(nn.Module):
    """(B, C, h, w) -> tokens (B, h·w, D) + positions -> transformer blocks -> (B, C, h, w),
    added to its input (a residual: at initialisation the U-Net is unchanged)."""

    def __init__(self, channels: int, dim: int, depth: int, heads: int, grid: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.proj_in = nn.Conv2d(channels, dim, 1)
        self.pos = nn.Parameter(torch.zeros(1, dim, grid, grid))  # learned, on a base grid
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.proj_out = nn.Conv2d(dim, channels, 1)
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def positions(self, h: int, w: int) -> torch.Tensor:
        """(1, D, h, w): the learned grid, bilinearly resized when the input grid differs."""
        if self.pos.shape[-2:] == (h, w):
            return self.pos
        return F.interpolate(self.pos, size=(h, w), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        t = (self.proj_in(x) + self.positions(h, w)).flatten(2).transpose(1, 2)  # (B, h·w, D)
        t = self.norm(self.blocks(t)).transpose(1, 2).reshape(b, -1, h, w)
        return x + self.proj_out(t)


class TransUNet(UNet):
    """A U-Net (`width`, `depth`) with `layers` transformer blocks of width `dim` at the
    bottleneck. `base_size`: the training input size, which sets the base position grid
    (base_size / 2^depth per side); other sizes interpolate it."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 16, depth: int = 3,
                 dim: int = 128, layers: int = 2, heads: int = 4, base_size: int = 96, **unet_kwargs):
        super().__init__(in_channels, out_channels, width=width, depth=depth, **unet_kwargs)
        grid = max(base_size // 2**depth, 1)
        self.bottleneck = TokenBottleneck(width * 2**depth, dim, layers, heads, grid)

    def transform_bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(x)


def conv_stem_vit(in_channels: int = 1, num_classes: int = 2, size: int = 28, **kwargs) -> ConvStemViT:
    """A ConvStemViT for an image size: 2 stride-2 stages at 28 px (a 7 × 7 grid), 3 at 64 px (8 × 8)."""
    kwargs.setdefault("stages", 2 if size <= 32 else 3)
    return ConvStemViT(in_channels, num_classes, size, **kwargs)

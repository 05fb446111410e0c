"""A Vision Transformer (Dosovitskiy et al., 2021) small enough to train from scratch on a CPU,
its blocks, and attention rollout (Abnar & Zuidema, 2020).

x (B, C, S, S) -> patches (B, N, D), N = (S / p)^2 -> [cls] + patches + positions -> `depth`
pre-norm blocks [x + attn(LN(x)); x + MLP(LN(x))] -> LN -> the class token's vector -> linear.

The layouts match PyTorch's so that weights copy one to one: `MultiHeadSelfAttention.qkv` is
`nn.MultiheadAttention.in_proj_weight` (q, k, v stacked), `Block` is
`nn.TransformerEncoderLayer(norm_first=True, activation="gelu")` (`load_from_torch_layer`).
Reused by chapters 08 (hybrids) and 09 (explainability). Explained in chapter 07.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import StochasticDepth


class PatchEmbed(nn.Module):
    """Cut the image into p x p patches and map each linearly to D numbers: a p x p convolution
    with stride p is exactly "flatten each patch, multiply by one (C p^2, D) matrix"."""

    def __init__(self, in_channels: int, dim: int, patch: int, size: int):
        super().__init__()
        if size % patch:
            raise ValueError(f"patch size {patch} does not divide the image size {size}; pick a divisor of {size}")
        self.patch, self.grid = patch, size // patch
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, g, g) -> (B, N, D), row by row


class MultiHeadSelfAttention(nn.Module):
    """softmax(Q K^T / sqrt(d_head)) V per head, heads concatenated, then a linear map.

    With `keep_attention = True` the forward pass computes the weights explicitly and keeps
    them in `self.attention` (B, heads, T, T) for maps and rollout; otherwise it calls
    `F.scaled_dot_product_attention` (the same numbers, faster)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be a multiple of heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.keep_attention = False
        self.attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, T, dh)
        p = self.dropout if self.training else 0.0
        if self.keep_attention:
            a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)  # (B, h, T, T)
            self.attention = a.detach()
            out = F.dropout(a, p, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))

    def matmul_macs(self, tokens: int) -> int:
        """Multiply-accumulates of Q K^T and A V for one image (the linear maps are counted as Linear)."""
        return 2 * tokens * tokens * self.qkv.in_features


class Block(nn.Module):
    """Pre-norm transformer block: x + DropPath(attn(LN(x))), then x + DropPath(MLP(LN(x)));
    MLP = Linear(D, rD) -> GELU -> Linear(rD, D). DropPath (stochastic depth, Huang 2016) skips
    the branch for a random fraction `drop_path` of the images in a batch while training."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, drop_path: float = 0.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    @torch.no_grad()
    def load_from_torch_layer(self, layer: nn.TransformerEncoderLayer) -> Block:
        """Copy the weights of `nn.TransformerEncoderLayer(dim, heads, int(mlp_ratio * dim),
        activation="gelu", batch_first=True, norm_first=True)` into this block."""
        pairs = [(self.attn.qkv.weight, layer.self_attn.in_proj_weight), (self.attn.qkv.bias, layer.self_attn.in_proj_bias),
                 (self.attn.proj.weight, layer.self_attn.out_proj.weight), (self.attn.proj.bias, layer.self_attn.out_proj.bias),
                 (self.mlp[0].weight, layer.linear1.weight), (self.mlp[0].bias, layer.linear1.bias),
                 (self.mlp[3].weight, layer.linear2.weight), (self.mlp[3].bias, layer.linear2.bias),
                 (self.norm1.weight, layer.norm1.weight), (self.norm1.bias, layer.norm1.bias),
                 (self.norm2.weight, layer.norm2.weight), (self.norm2.bias, layer.norm2.bias)]
        for mine, theirs in pairs:
            mine.copy_(theirs)
        return self


class ViT(nn.Module):
    """A Vision Transformer classifier. Defaults (28 px, patch 4, D = 128, depth 6, 4 heads, MLP
    ratio 2): 49 patches + a class token, about 0.8 M parameters.

    Positional embeddings are learned (one D-vector per token, initialised N(0, 0.02^2) as ViT's).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, size: int = 28, patch: int = 4, dim: int = 128,
                 depth: int = 6, heads: int = 4, mlp_ratio: float = 2.0, drop_path: float = 0.1,
                 dropout: float = 0.0):
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, dim, patch, size)
        n = self.patch_embed.grid ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]  # deeper blocks are skipped more often
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio, r, dropout) for r in rates])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init)

    @property
    def grid(self) -> int:
        return self.patch_embed.grid

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, 1 + N, D): the class token, then the patches, with positions added."""
        x = self.patch_embed(x)
        return torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.tokens(x)))[:, 0])

    def no_weight_decay(self) -> set[str]:
        """Parameters that weight decay should skip (ViT convention): embeddings, norms, biases."""
        return {n for n, p in self.named_parameters() if p.ndim < 2 or n in ("cls_token", "pos_embed")}


def _init(m: nn.Module) -> None:  # ViT's init: truncated normal linear weights, zero biases
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def attention_maps(model: ViT, x: torch.Tensor) -> list[torch.Tensor]:
    """The attention weights of every block for a batch: a list of `depth` tensors (B, heads, T, T)."""
    layers = [b.attn for b in model.blocks]
    was = model.training
    model.eval()
    try:
        for a in layers:
            a.keep_attention = True
        with torch.no_grad():
            model(x)
        return [a.attention for a in layers]
    finally:
        for a in layers:
            a.keep_attention, a.attention = False, None
        model.train(was)


def rollout(attentions: list[torch.Tensor], residual: float = 0.5, head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each token's final vector draws on each
    input token, following attention through every layer and the residual path.

    Per layer: fuse heads (mean or max) -> A (B, T, T); add the skip connection
    A' = (1 - residual) A + residual I; renormalise rows; multiply the layers: R = A'_L ... A'_1.
    Returns R (B, T, T); its rows sum to one. R[:, 0, 1:] is the class token's map over patches."""
    if head_fusion not in ("mean", "max"):
        raise ValueError(f"head_fusion must be 'mean' or 'max', got {head_fusion!r}")
    r = None
    for a in attentions:
        a = a.mean(1) if head_fusion == "mean" else a.amax(1)
        a = (1 - residual) * a + residual * torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        a = a / a.sum(-1, keepdim=True)
        r = a if r is None else a @ r
    return r


def cls_map(model: ViT, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """The rollout of the class token over the patches as an image grid (B, g, g), each summing to one."""
    r = rollout(attention_maps(model, x), **kwargs)[:, 0, 1:]
    r = r / r.sum(-1, keepdim=True)
    return r.view(len(x), model.grid, model.grid)


def vit(in_channels: int = 1, num_classes: int = 2, size: int = 28, patch: int | None = None, **kwargs) -> ViT:
    """A ViT for an image size with a default patch: 4 at 28 px (a 7 x 7 grid), else size / 8 (an
    8 x 8 grid). Chapter 07's recipe picks its own (`medlib.recipes.vit.patch_for`)."""
    patch = patch or {28: 4}.get(size, max(size // 8, 1))
    return ViT(in_channels, num_classes, size, patch, **kwargs)

"""U-Net and its variants, small enough to read in one sitting.

- `UNet(depth, width, skips)`: Ronneberger et al. 2015. `skips=False` drops the skip
  connections (an FCN-like encoder-decoder, the ablation of chapter 05).
- `attention=True`: Attention U-Net (Oktay et al. 2018); additive attention gates weight
  each skip connection; the last gate maps are kept in `model.gate_maps`.
- `residual=True`: residual U-Net (ResUNet, Zhang et al. 2018): each block adds its input
  (projected by a 1×1 convolution) to its output.

Explained in chapter 05.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn as nn

from medlib.models.common import build, conv_bn_relu


class ConvBlock(nn.Module):
    """Two conv-BN-ReLU layers; with `residual`, plus a 1×1-projected shortcut."""

    def __init__(self, c_in: int, c_out: int, residual: bool = False, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(c_in, c_out), nn.Dropout2d(dropout), conv_bn_relu(c_out, c_out))
        self.shortcut = None
        if residual:
            self.shortcut = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, H, W) -> (B, c_out, H, W)
        y = self.body(x)
        return y if self.shortcut is None else y + self.shortcut(x)


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay 2018): α = σ(ψ(ReLU(W_x x + W_g g))), output α·x.

    x: skip features (B, C_x, H, W); g: the gating signal from the coarser decoder level,
    already upsampled to (B, C_g, H, W). The map α (B, 1, H, W) is kept in `self.last_map`.
    """

    def __init__(self, c_x: int, c_g: int, c_mid: int):
        super().__init__()
        self.w_x = nn.Conv2d(c_x, c_mid, 1, bias=False)
        self.w_g = nn.Conv2d(c_g, c_mid, 1, bias=True)
        self.psi = nn.Conv2d(c_mid, 1, 1, bias=True)
        self.last_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.psi(torch.relu(self.w_x(x) + self.w_g(g))))  # (B, 1, H, W)
        self.last_map = alpha.detach()
        return x * alpha


class UNet(nn.Module):
    """U-Net: `depth` poolings, `width` channels at full resolution, doubled per level.

    Input (B, in_channels, H, W) with H and W divisible by 2**depth (pad otherwise, see
    `medlib.data.segmentation.predict_padded`); output logits (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 32,
        depth: int = 4,
        skips: bool = True,
        attention: bool = False,
        residual: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        if attention and not skips:
            raise ValueError("attention gates act on skip connections: use skips=True")
        self.depth, self.skips, self.attention = depth, skips, attention
        chans = [width * 2**i for i in range(depth + 1)]  # e.g. 32, 64, 128, 256, 512
        self.down = nn.ModuleList()
        c_prev = in_channels
        for c in chans:
            self.down.append(ConvBlock(c_prev, c, residual, dropout if c == chans[-1] else 0.0))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.dec = nn.ModuleList()
        for c_skip, c_deep in zip(reversed(chans[:-1]), reversed(chans[1:])):
            self.up.append(nn.ConvTranspose2d(c_deep, c_skip, 2, stride=2))  # 2× upsampling
            if attention:
                self.gates.append(AttentionGate(c_skip, c_skip, max(c_skip // 2, 1)))
            self.dec.append(ConvBlock(2 * c_skip if skips else c_skip, c_skip, residual))
        self.head = nn.Conv2d(width, out_channels, 1)

    @property
    def gate_maps(self) -> list[torch.Tensor]:
        """The attention maps of the last forward pass, coarse to fine (B, 1, h, w) each."""
        return [g.last_map for g in self.gates if g.last_map is not None]

    def transform_bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """The coarsest features, unchanged; hybrids put a transformer here (`TransUNet`)."""
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W)
        factor = 2**self.depth
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(
                f"U-Net of depth {self.depth} needs H and W divisible by {factor}, got "
                f"{tuple(x.shape[-2:])}; pad the input (see predict_padded)"
            )
        feats = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))  # (B, width·2^i, H/2^i, W/2^i)
            feats.append(x)
        x = self.transform_bottleneck(feats.pop())  # (B, width·2^depth, H/2^depth, W/2^depth)
        for j, (up, dec) in enumerate(zip(self.up, self.dec)):
            x = up(x)  # (B, C_skip, 2h, 2w)
            skip = feats.pop()
            if self.skips:
                if self.attention:
                    skip = self.gates[j](skip, x)
                x = torch.cat([skip, x], dim=1)  # (B, 2·C_skip, 2h, 2w)
            x = dec(x)
        return self.head(x)  # (B, out_channels, H, W) logits


# name -> factory(in_channels, out_channels, **options such as width, depth)
MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "unet_noskip": partial(UNet, skips=False),
    "attention_unet": partial(UNet, attention=True),
    "res_unet": partial(UNet, residual=True),
}


def build_unet(name: str = "unet", in_channels: int = 1, out_channels: int = 1, **kwargs) -> UNet:
    """A U-Net variant by name (one of MODELS); kwargs (width, depth, ...) are passed on.
    Chapters build under the run's seed with `run.build(build_unet, ...)`."""
    return build(MODELS, name, in_channels, out_channels, **kwargs)

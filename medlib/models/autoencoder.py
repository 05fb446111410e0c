"""Autoencoders and their relatives, for chapter 03.

- `ConvAutoencoder`: strided convolutions down to a `latent`-dimensional code, transposed
  convolutions back up; the decoder ends in a sigmoid (images in [0, 1]).
- `VAE`: the same encoder gives a mean and a log-variance; `reparameterize` samples
  z = mu + sigma * eps; `kl_normal` and `gaussian_nll` are the two terms of the ELBO.
- `DenoisingUNet`: a small U-Net that predicts the noise and subtracts it (residual learning,
  as DnCNN does; Zhang et al. 2017).
- `RotationNet`: a small CNN trained to tell which of 8 rotations/flips was applied to an image
  (Golan and El-Yaniv 2018); its features give a k-nearest-neighbour anomaly score.

Images are (B, C, H, W) floats in [0, 1]; `size` is the side (28, 64, ...).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _down(c_in: int, c_out: int) -> nn.Sequential:  # halves H and W
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def _up(c_in: int, c_out: int) -> nn.Sequential:  # doubles H and W
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.2))


def _n_down(size: int) -> int:
    """Halvings until the feature map is at most 8 px: 28 -> 7 (2), 64 -> 8 (3)."""
    n = 0
    while size > 8:
        if size % 2:
            raise ValueError(f"image size {size} cannot be halved down to <= 8 px; use 28, 32, 64, 128...")
        size, n = size // 2, n + 1
    return n


class ConvAutoencoder(nn.Module):
    """x (B, C, S, S) -> code (B, latent) -> reconstruction (B, C, S, S) in [0, 1]."""

    def __init__(self, in_channels: int = 1, latent: int = 32, size: int = 28, width: int = 32, out: int | None = None):
        super().__init__()
        n = _n_down(size)
        chans = [width * min(2**i, 2) for i in range(n)]  # 32, 64, 64 ...
        self.side, self.chans = size // 2**n, chans
        flat = chans[-1] * self.side**2
        downs = [_down(c_in, c_out) for c_in, c_out in zip([in_channels, *chans[:-1]], chans)]
        self.encoder = nn.Sequential(*downs, nn.Flatten(), nn.Linear(flat, out or latent))
        ups = [_up(c_in, c_out) for c_in, c_out in zip(chans[::-1], [*chans[::-1][1:], chans[0]])]
        self.decoder = nn.Sequential(nn.Linear(latent, flat), nn.Unflatten(1, (chans[-1], self.side, self.side)),
                                     nn.LeakyReLU(0.2), *ups, nn.Conv2d(chans[0], in_channels, 3, padding=1),
                                     nn.Sigmoid())
        self.latent = latent

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, latent)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, C, S, S)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class VAE(ConvAutoencoder):
    """The encoder outputs (mu, log sigma^2) of q(z|x); the decoder the mean of p(x|z)."""

    def __init__(self, in_channels: int = 1, latent: int = 16, size: int = 28, width: int = 32):
        super().__init__(in_channels, latent, size, width, out=2 * latent)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, latent) each
        return mu, logvar.clamp(-12, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return self.decode(torch.randn(n, self.latent, generator=generator, device=device))


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): the sample is a differentiable function of mu, sigma."""
    eps = torch.randn_like(mu) if eps is None else eps
    return mu + torch.exp(0.5 * logvar) * eps


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per item, closed form: 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)  # (B,)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """-log N(x; mean, sigma^2 I) per item, summed over pixels, without the constant
    D log(sigma sqrt(2 pi)) that no parameter changes: ||x - mean||^2 / (2 sigma^2)."""
    return (x - mean).pow(2).flatten(1).sum(1) / (2 * sigma**2)


def negative_elbo(x, recon, mu, logvar, beta: float = 1.0, sigma: float = 0.1):
    """(-ELBO, reconstruction term, KL) per item: -ELBO = -log p(x|z) + beta * KL(q(z|x) || p(z))."""
    rec, kl = gaussian_nll(x, recon, sigma), kl_normal(mu, logvar)
    return rec + beta * kl, rec, kl


class DenoisingUNet(nn.Module):
    """A two-level U-Net that estimates the noise; output = noisy - estimate. Sides divisible by 4.
    `width` channels at full resolution, 2 x width below."""

    def __init__(self, in_channels: int = 1, width: int = 32):
        super().__init__()

        def block(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())

        w = width
        self.enc1, self.enc2, self.mid = block(in_channels, w), block(w, 2 * w), block(2 * w, 2 * w)
        self.up2, self.dec2 = nn.ConvTranspose2d(2 * w, 2 * w, 2, 2), block(4 * w, w)
        self.up1, self.dec1 = nn.ConvTranspose2d(w, w, 2, 2), block(2 * w, w)
        self.out = nn.Conv2d(w, in_channels, 1)
        nn.init.zeros_(self.out.weight)  # start as the identity (predicted noise 0): stable at any width
        nn.init.zeros_(self.out.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.shape[-1] % 4 or y.shape[-2] % 4:
            raise ValueError(f"DenoisingUNet needs sides divisible by 4, got {tuple(y.shape[-2:])}")
        e1 = self.enc1(y)  # (B, w, S, S)
        e2 = self.enc2(F.max_pool2d(e1, 2))  # (B, 2w, S/2, S/2)
        m = self.mid(F.max_pool2d(e2, 2))  # (B, 2w, S/4, S/4)
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return y - self.out(d1)  # the clean estimate: noisy minus the predicted noise


N_TRANSFORMS = 8


def geometric(x: torch.Tensor, k: int) -> torch.Tensor:
    """Transform k of 8: rotation by 90 * (k % 4) degrees, then a horizontal flip if k >= 4."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


class RotationNet(nn.Module):
    """A small CNN: `features(x)` (B, widths[-1]) and 8 logits, which transform was applied."""

    def __init__(self, in_channels: int = 1, widths=(16, 32, 64)):
        super().__init__()

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        a, b, c = widths
        self.body = nn.Sequential(*block(in_channels, a), *block(a, a), nn.MaxPool2d(2), *block(a, b), *block(b, b),
                                  nn.MaxPool2d(2), *block(b, c), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, N_TRANSFORMS)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

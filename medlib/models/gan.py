"""GANs for MedMNIST-sized images: a DCGAN generator and discriminator (class-conditional when
given `n_classes`, spectrally normalised on request), the losses of the minimax game and of
WGAN-GP, the gradient penalty, and the training step (`GANStep`, the engine's step contract).
Explained in chapter 04.

Shapes: the generator maps z (B, z_dim) [and labels (B,)] to images (B, C, S, S) in [-1, 1]
(the suite's Normalize(0.5, 0.5) scale); the discriminator maps images [and labels] to one
logit (or critic score) per image, (B,).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from medlib.train import StepContext, TrainStep

LOSSES = ("ns", "wgan-gp")  # the non-saturating GAN loss (DCGAN), the Wasserstein loss with gradient penalty


def _layout(size: int) -> tuple[int, int]:
    """(start, n_up): the generator starts at start x start and doubles `n_up` times to `size`."""
    for start in (7, 8):
        n_up = math.log2(size / start) if size >= start else -1
        if n_up >= 1 and n_up == int(n_up):
            return start, int(n_up)
    raise ValueError(f"image size {size} is not 7 or 8 times a power of two (28, 56, 64, 128, 224 are)")


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: (transposed) convolution and linear weights N(0, 0.02), norm
    scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """DCGAN generator (Radford 2016): a linear projection of z to a (c, s, s) map, then
    stride-2 transposed convolutions (4x4) that double the size and halve the channels, batch
    norm + ReLU between them, tanh at the end. Conditional: a learned class embedding is
    concatenated to z (the class-conditional GAN of Mirza & Osindero 2014)."""

    def __init__(self, z_dim: int = 64, channels: int = 1, n_classes: int = 0, width: int = 32, size: int = 28,
                 embed_dim: int = 16):
        super().__init__()
        self.z_dim, self.n_classes, self.channels, self.size = z_dim, n_classes, channels, size
        self.start, n_up = _layout(size)
        c = width * 2 ** (n_up - 1)
        self.embed = nn.Embedding(n_classes, embed_dim) if n_classes else None
        self.project = nn.Sequential(
            nn.Linear(z_dim + (embed_dim if n_classes else 0), c * self.start ** 2, bias=False),
            nn.Unflatten(1, (c, self.start, self.start)), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        ups = []
        for i in range(n_up):
            last = i == n_up - 1
            out = channels if last else c // 2
            ups.append(nn.ConvTranspose2d(c, out, 4, stride=2, padding=1, bias=last))  # doubles H and W
            ups += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            c = out
        self.up = nn.Sequential(*ups)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if y is None:
                raise ValueError("this generator is class-conditional: pass the labels y (B,)")
            z = torch.cat([z, self.embed(y)], 1)
        return self.up(self.project(z))


class Discriminator(nn.Module):
    """DCGAN discriminator / WGAN critic: stride-2 4x4 convolutions that halve the size and
    double the channels, LeakyReLU(0.2), then one linear output. `norm`: "batch" (DCGAN),
    "layer" (GroupNorm(1, c): the WGAN-GP critic must not mix images of a batch, because the
    gradient penalty is per image) or "none". Conditional: a projection discriminator (Miyato &
    Koyama 2018) adds <embed(y), features>. `spectral`: spectral normalisation of every weight
    (Miyato 2018)."""

    def __init__(self, channels: int = 1, n_classes: int = 0, width: int = 32, size: int = 28, norm: str = "batch",
                 spectral: bool = False):
        super().__init__()
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {norm!r}")
        start, n_down = _layout(size)
        sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        layers, c_in, c = [], channels, width
        for i in range(n_down):
            layers.append(sn(nn.Conv2d(c_in, c, 4, stride=2, padding=1, bias=i == 0 or norm == "none")))
            if i > 0 and norm != "none":
                layers.append(nn.BatchNorm2d(c) if norm == "batch" else nn.GroupNorm(1, c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in, c = c, 2 * c
        self.features = nn.Sequential(*layers, nn.Flatten())  # (B, c_in * start * start)
        n_feat = c_in * start * start
        self.out = sn(nn.Linear(n_feat, 1))
        self.embed = sn(nn.Embedding(n_classes, n_feat)) if n_classes else None
        self.n_classes = n_classes
        dcgan_init(self)
        if self.embed is not None:  # small: the projection term starts near zero, not at |h| * N(0, 1)
            nn.init.normal_(self.embed.weight if not spectral else self.embed.parametrizations.weight.original, 0, 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.out(h)[:, 0]
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is class-conditional: pass the labels y (B,)")
            out = out + (self.embed(y) * h).sum(1)
        return out


# ----------------------------------------------------------------------------- the game's losses
def d_loss_ns(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss: -log D(x) - log(1 - D(G(z))), D = sigmoid(logit) — binary
    cross-entropy with targets 1 (real) and 0 (fake), = softplus(-real) + softplus(fake), each
    averaged over the batch."""
    return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
        F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def g_loss_ns(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -log D(G(z)) = softplus(-logit) (Goodfellow 2014):
    cross-entropy with target 1 on the fakes."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def g_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The minimax generator loss log(1 - D(G(z))) = -softplus(logit): its gradient vanishes
    where D rejects the fakes confidently, i.e. early in training."""
    return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None,
                     generator: torch.Generator | None = None, eps: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani 2017): E[(||grad_x critic(x_hat)||_2 - 1)^2] at random points
    x_hat = eps * real + (1 - eps) * fake, eps ~ U(0, 1) per image (drawn with `generator`, or given
    as `eps` (B, 1, 1, 1))."""
    if eps is None:
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, generator=generator)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    score = critic(x_hat, y) if y is not None else critic(x_hat)
    (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


# ----------------------------------------------------------------------------- the training step
class GANStep(TrainStep):
    """One generator iteration of the adversarial game, under the engine's step contract.

    "ns" (DCGAN): draw z, fake = G(z, y); update D on real vs fake.detach(); update G to make
    D call the same fake real (non-saturating loss). Adam(lr, betas (0.5, 0.999)) for both.
    "wgan-gp": the batch holds `n_critic` chunks; for each, a critic update on
    critic(fake) - critic(real) + gp_weight * penalty; then one generator update on -critic(G(z)).
    Adam(lr, betas (0, 0.9)) as Gulrajani et al. Conditional models get the real batch's labels
    (generated images then follow the training set's class shares). Noise comes from the step's
    own generator seeded with `seed`: the same seed, the same game.
    """

    def __init__(self, G: Generator, D: Discriminator, loss: str = "ns", *, lr_g: float = 2e-4, lr_d: float = 2e-4,
                 n_critic: int = 5, gp_weight: float = 10.0, seed: int = 0):
        if loss not in LOSSES:
            raise ValueError(f"unknown GAN loss {loss!r}; valid choices: {', '.join(LOSSES)}")
        self.G, self.D, self.loss = G, D, loss
        self.lr_g, self.lr_d, self.n_critic, self.gp_weight = lr_g, lr_d, n_critic, gp_weight
        self.betas = (0.5, 0.999) if loss == "ns" else (0.0, 0.9)
        self.seed, self.noise = seed, None

    def modules(self):
        return {"G": self.G, "D": self.D}

    def configure(self, epochs, steps_per_epoch):
        return {"D": (torch.optim.Adam(self.D.parameters(), lr=self.lr_d, betas=self.betas), None),
                "G": (torch.optim.Adam(self.G.parameters(), lr=self.lr_g, betas=self.betas), None)}

    def _z(self, n: int, device) -> torch.Tensor:
        if self.noise is None or self.noise.device != torch.device(device):
            self.noise = torch.Generator(device=device).manual_seed(self.seed)
        if getattr(self, "_pending", None) is not None:
            self.noise.set_state(self._pending)
            self._pending = None
        return torch.randn(n, self.G.z_dim, device=device, generator=self.noise)

    def _y(self, y):
        return y if self.G.n_classes else None

    def step(self, batch, ctx: StepContext):
        x, y = ctx.to_device(batch)
        return self._ns(x, y, ctx) if self.loss == "ns" else self._wgan(x, y, ctx)

    def _ns(self, x, y, ctx):
        yc = self._y(y)
        with ctx.autocast():
            fake = self.G(self._z(len(x), x.device), yc)
            real_logits, fake_logits = self.D(x, yc), self.D(fake.detach(), yc)
            d_loss = d_loss_ns(real_logits, fake_logits)
        ctx.optimize("D", d_loss)
        with ctx.autocast():
            g_logits = self.D(fake, yc)
            g_loss = g_loss_ns(g_logits)
        ctx.optimize("G", g_loss)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "d_real": torch.sigmoid(real_logits).mean().detach(),
                "d_fake": torch.sigmoid(fake_logits).mean().detach()}

    def _wgan(self, x, y, ctx):
        for xc, yc in zip(x.chunk(self.n_critic), y.chunk(self.n_critic)):
            yc = self._y(yc)
            with torch.no_grad():
                fake = self.G(self._z(len(xc), xc.device), yc)
            with ctx.autocast():
                real_s, fake_s = self.D(xc, yc), self.D(fake, yc)
                gp = gradient_penalty(self.D, xc, fake, yc, generator=self.noise)
                d_loss = fake_s.mean() - real_s.mean() + self.gp_weight * gp
            ctx.optimize("D", d_loss)
        with ctx.autocast():
            g_loss = -self.D(self.G(self._z(len(xc), xc.device), yc), yc).mean()
        ctx.optimize("G", g_loss)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "w_dist": (real_s.mean() - fake_s.mean()).detach(),
                "gp": gp.detach()}

    def state_dict(self):
        return {"noise": self.noise.get_state() if self.noise is not None else None}

    def load_state_dict(self, state):
        self._pending = state.get("noise")  # set on the device's generator at the next draw


@torch.no_grad()
def sample(G: Generator, n: int, *, labels: torch.Tensor | None = None, seed: int = 0, device=None,
           batch_size: int = 512) -> torch.Tensor:
    """`n` images from G in eval mode, (n, C, S, S) floats in [-1, 1], noise from a generator
    seeded with `seed` (the same seed, the same images). Conditional: `labels` (n,)."""
    if G.n_classes and labels is None:
        raise ValueError("this generator is class-conditional: pass labels (n,)")
    device = device or next(G.parameters()).device
    G.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        b = min(batch_size, n - i)
        z = torch.randn(b, G.z_dim, device=device, generator=g)
        out.append(G(z, labels[i:i + b].to(device) if labels is not None else None).float().cpu())
    return torch.cat(out) if out else torch.empty(0, G.channels, G.size, G.size)

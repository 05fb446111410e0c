"""Training recipes for chapter 03 (autoencoders): batches that pair an input with its target,
the VAE's and the rotation network's training steps, and the chapter's budgets.

Every model here is trained by `medlib.train` — the autoencoder and the denoiser with the
default `SupervisedStep` (the batch source yields (input, target) pairs: (x, x) for an
autoencoder, (noisy x, x) for a denoiser), the VAE with `VAEStep` (its ELBO), the rotation
network with `RotationStep`. The best epoch is chosen on validation images only — and, in
the anomaly path, on NORMAL validation images only (`medlib.anomaly`). Images are [0, 1].

The budgets (`CHAPTER_BUDGETS`, images seen per model) were set so the chapter fits its
profile's time on 2 CPU cores; they are budgets, not choices tuned on any score.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from medlib.data.augment import random_flip
from medlib.data.batches import normalize
from medlib.data.noise import add_noise, sample_level
from medlib.metrics.image import psnr
from medlib.models.autoencoder import N_TRANSFORMS, VAE, geometric, negative_elbo
from medlib.recipes.classification import standard_epochs
from medlib.train import (
    History,
    StepContext,
    Trainer,
    TrainStep,
    fit,
    make_optimizer,
    make_schedule,
)

CHAPTER_BUDGETS = {
    "smoke": {"max_train": 256, "max_eval": 128, "ae_images": 512, "sweep_latents": (4, 64),
              "denoise_images": 512, "vae_images": 512, "normal_images": 256, "rotation_images": 256,
              "cnn_images": 512, "n_tune": 4, "n_denoise": 8, "label_fractions": (0.1, 1.0)},
    "standard": {"ae_images": 9_400, "sweep_latents": (2, 8, 32, 128),
                 "denoise_images": 28_000, "vae_images": 9_400, "normal_images": 7_000, "rotation_images": 6_000,
                 "cnn_images": 6_000, "n_tune": 12, "n_denoise": 100, "label_fractions": (0.01, 0.1, 1.0)},
    "paper": {"ae_images": 100_000, "sweep_latents": (2, 8, 32, 128),
              "denoise_images": 200_000, "vae_images": 100_000, "normal_images": 60_000, "rotation_images": 40_000,
              "cnn_images": 50_000, "n_tune": 64, "n_denoise": None, "label_fractions": (0.01, 0.1, 1.0)},
}


def epochs_for(images: int, n: int) -> int:
    """Epochs so that about `images` training images are seen from a split of `n` (at least one)."""
    return standard_epochs(n, images, lo=1, hi=400)


def to_unit(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1] (this chapter's scale: PSNR and SSIM on [0, 1])."""
    return normalize(x_uint8, mean=0.0, std=1.0)


class PairBatches:
    """Shuffled batches of (input, target) from uint8 images (N, C, H, W), on `device`.

    `pair(x, generator)` turns a clean [0, 1] batch into (input, target); the default is
    (x, x), an autoencoder's pair. A random horizontal flip is applied first when `flip`.
    Re-iterable, with a length and its RNG state (`state_dict`) for an exact resume."""

    def __init__(self, images: torch.Tensor, batch_size: int = 64, device="cpu", seed: int = 0,
                 pair: Callable | None = None, flip: bool = True):
        if images.dtype != torch.uint8:
            raise TypeError(f"PairBatches takes uint8 images, got {images.dtype}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.batch_size, self.flip = batch_size, flip
        self.pair = pair or (lambda x, g: (x, x))
        self.generator = torch.Generator().manual_seed(seed)
        self.aug_generator = torch.Generator(device=self.device).manual_seed(seed + 1)

    def __len__(self) -> int:
        return max(1, len(self.images) // self.batch_size)  # the last partial batch is dropped

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "aug_generator": self.aug_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.aug_generator.set_state(state["aug_generator"])

    def __iter__(self):
        order = torch.randperm(len(self.images), generator=self.generator).to(self.device)
        for i in range(len(self)):
            x = to_unit(self.images[order[i * self.batch_size:(i + 1) * self.batch_size]])  # (B, C, H, W)
            if self.flip:
                x = random_flip(x, self.aug_generator, dim=-1)
            yield self.pair(x, self.aug_generator)


def noisy_pairs(kind: str) -> Callable:
    """(noisy x, x) with a noise level drawn per image across the kind's range: one blind denoiser."""
    def pair(x, g):
        level = sample_level(kind, len(x), g).to(x.device, x.dtype)
        return add_noise(x, kind, level, g), x
    return pair


@torch.no_grad()
def reconstruction_error(model, images: torch.Tensor, device, batch_size: int = 512) -> torch.Tensor:
    """Per-image mean squared reconstruction error (N,) of uint8 images, in eval mode."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_unit(images[i:i + batch_size].to(device))
        out.append((model(x) - x).pow(2).flatten(1).mean(1).cpu())
    return torch.cat(out)


def train_autoencoder(model, train_images, val_images, *, epochs: int, device, seed: int = 0, lr: float = 3e-3,
                      batch_size: int = 64, progress: bool = False) -> History:
    """MSE autoencoder training (`SupervisedStep` on (x, x) pairs); the epoch with the lowest
    validation reconstruction error is kept."""
    batches = PairBatches(train_images, batch_size, device, seed)
    return fit(model, batches, epochs=epochs, loss_fn=F.mse_loss, optimizer="adamw", lr=lr, weight_decay=1e-4,
               schedule="cosine", evaluate=lambda: {"mse": float(reconstruction_error(model, val_images, device).mean())},
               select_by="mse", mode="min", device=device, progress=progress)


def fixed_noisy(images: torch.Tensor, kind: str, level: float, seed: int) -> torch.Tensor:
    """The same noisy copy of `images` (uint8) every time: a fixed validation set for selection."""
    g = torch.Generator().manual_seed(seed)
    return add_noise(to_unit(images), kind, level, g)


@torch.no_grad()
def denoise(model, noisy: torch.Tensor, device, batch_size: int = 256) -> torch.Tensor:
    """The model's clean estimates of [0, 1] noisy images, clipped to [0, 1]."""
    model.eval()
    return torch.cat([model(noisy[i:i + batch_size].to(device)).clamp(0, 1).cpu()
                      for i in range(0, len(noisy), batch_size)])


def train_denoiser(model, train_images, val_images, kind: str, level: float, *, epochs: int, device, seed: int = 0,
                   lr: float = 3e-3, batch_size: int = 64, progress: bool = False) -> History:
    """A blind denoiser for one noise kind (levels drawn across its range), one-cycle-like
    schedule (a warm-up epoch, cosine); the epoch with the best validation PSNR at `level` is kept."""
    batches = PairBatches(train_images, batch_size, device, seed, pair=noisy_pairs(kind))
    clean, noisy = to_unit(val_images), fixed_noisy(val_images, kind, level, seed)
    return fit(model, batches, epochs=epochs, loss_fn=F.mse_loss, optimizer="adamw", lr=lr, weight_decay=1e-4,
               schedule="cosine", warmup_epochs=min(1.0, 0.1 * epochs),
               evaluate=lambda: {"psnr": float(psnr(clean, denoise(model, noisy, device)).mean())},
               select_by="psnr", mode="max", device=device, progress=progress)


class VAEStep(TrainStep):
    """One VAE step: encode, sample z by the reparameterisation trick, decode, minimise the
    mean negative ELBO = reconstruction (Gaussian, fixed sigma) + beta * KL."""

    def __init__(self, model: VAE, beta: float = 1.0, sigma: float = 0.1, lr: float = 2e-3, weight_decay: float = 0.0,
                 schedule: str = "cosine"):
        self.model, self.beta, self.sigma, self.lr, self.weight_decay = model, beta, sigma, lr, weight_decay
        self.schedule = schedule

    def modules(self):
        return {"model": self.model}

    def configure(self, epochs, steps_per_epoch):
        opt = make_optimizer(self.model, "adamw", lr=self.lr, weight_decay=self.weight_decay)
        return {"model": (opt, make_schedule(opt, self.schedule, epochs=epochs, steps_per_epoch=steps_per_epoch))}

    def step(self, batch, ctx: StepContext):
        x, _ = ctx.to_device(batch)
        with ctx.autocast():
            recon, mu, logvar = self.model(x)
            loss, rec, kl = negative_elbo(x, recon, mu, logvar, self.beta, self.sigma)
        ctx.optimize("model", loss.mean())
        return {"loss": loss.mean(), "recon": rec.mean(), "kl": kl.mean()}


@torch.no_grad()
def vae_scores(model: VAE, images: torch.Tensor, device, sigma: float = 0.1, samples: int = 8, seed: int = 0,
               batch_size: int = 512) -> torch.Tensor:
    """Per-image negative ELBO (N,), its expectation over q(z|x) estimated with `samples` draws
    from a fixed generator (the same score every time)."""
    model.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    out = []
    for i in range(0, len(images), batch_size):
        x = to_unit(images[i:i + batch_size].to(device))
        mu, logvar = model.encode(x)
        total = torch.zeros(len(x), device=device)
        for _ in range(samples):
            eps = torch.randn(mu.shape, generator=g, device=device)
            z = mu + torch.exp(0.5 * logvar) * eps
            total += negative_elbo(x, model.decode(z), mu, logvar, 1.0, sigma)[0]
        out.append((total / samples).cpu())
    return torch.cat(out)


def train_vae(model: VAE, train_images, val_images, *, epochs: int, device, seed: int = 0, beta: float = 1.0,
              sigma: float = 0.1, lr: float = 2e-3, batch_size: int = 64, progress: bool = False) -> History:
    """Train a VAE; the epoch with the lowest mean validation negative ELBO is kept."""
    trainer = Trainer(VAEStep(model, beta, sigma, lr), epochs=epochs, device=device, progress=progress,
                      evaluate=lambda: {"neg_elbo": float(vae_scores(model, val_images, device, sigma, 2, seed).mean())},
                      select_by="neg_elbo", mode="min")
    return trainer.fit(PairBatches(train_images, batch_size, device, seed))


class RotationStep(TrainStep):
    """Self-supervision without labels: every image in all 8 rotations/flips, classify which."""

    def __init__(self, model, lr: float = 2e-3, weight_decay: float = 5e-4):
        self.model, self.lr, self.weight_decay = model, lr, weight_decay

    def modules(self):
        return {"model": self.model}

    def configure(self, epochs, steps_per_epoch):
        opt = make_optimizer(self.model, "adamw", lr=self.lr, weight_decay=self.weight_decay)
        return {"model": (opt, make_schedule(opt, "cosine", epochs=epochs, steps_per_epoch=steps_per_epoch,
                                             warmup_epochs=min(1.0, 0.2 * epochs)))}

    def step(self, batch, ctx: StepContext):
        x, _ = ctx.to_device(batch)
        xs, ks = rotations(x)
        with ctx.autocast():
            loss = F.cross_entropy(self.model(xs * 2 - 1), ks)
        ctx.optimize("model", loss)
        return {"loss": loss}


def rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All 8 transforms of a batch (8B, C, H, W) and which one each is (8B,). Square images."""
    ks = torch.arange(N_TRANSFORMS, device=x.device).repeat_interleave(len(x))
    return torch.cat([geometric(x, k) for k in range(N_TRANSFORMS)]), ks


@torch.no_grad()
def rotation_loss(model, images: torch.Tensor, device, batch_size: int = 256) -> torch.Tensor:
    """Per-image mean cross-entropy over the 8 transforms (N,)."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_unit(images[i:i + batch_size].to(device))
        xs, ks = rotations(x)
        ce = F.cross_entropy(model(xs * 2 - 1), ks, reduction="none").view(N_TRANSFORMS, len(x))
        out.append(ce.mean(0).cpu())
    return torch.cat(out)


@torch.no_grad()
def features(model, images: torch.Tensor, device, batch_size: int = 512) -> torch.Tensor:
    """L2-normalised `model.features` of uint8 images (N, F)."""
    model.eval()
    return torch.cat([F.normalize(model.features(to_unit(images[i:i + batch_size].to(device)) * 2 - 1), dim=1).cpu()
                      for i in range(0, len(images), batch_size)])


def train_rotation(model, train_images, val_images, *, epochs: int, device, seed: int = 0, lr: float = 2e-3,
                   batch_size: int = 32, progress: bool = False) -> History:
    """Rotation prediction; the epoch with the lowest validation rotation loss is kept."""
    trainer = Trainer(RotationStep(model, lr), epochs=epochs, device=device, progress=progress,
                      evaluate=lambda: {"rotation_loss": float(rotation_loss(model, val_images, device).mean())},
                      select_by="rotation_loss", mode="min")
    return trainer.fit(PairBatches(train_images, batch_size, device, seed, flip=False))

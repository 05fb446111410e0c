"""Chapter 04's budgets and recipes: the judge (chapter 01's CompactResNet trained on real
images; its features define the domain FID/KID), GAN training with a validation Fréchet
distance every epoch (the best epoch is kept: validation chooses) and fixed-noise grids,
synthetic training sets with the real class shares, and the small-label trial (a subset of the
labels, with and without conditional samples from a GAN trained on that subset only).
Explained in chapter 04."""

from __future__ import annotations

import time

import numpy as np
import torch

from medlib.data.batches import TensorLoader, normalize, to_uint8
from medlib.data.medmnist import Split
from medlib.metrics.generative import DomainFeatures, features, frechet_distance
from medlib.models.gan import Discriminator, GANStep, Generator, sample
from medlib.recipes.classification import (
    build_classifier,
    recipe,
    standard_epochs,
    train_classifier,
)
from medlib.train import History, Trainer

JUDGE = "compactresnet"  # chapter 01's CPU model, trained on real images with its `standard` recipe
Z_DIM = 64
WIDTH = 32  # generator 0.28 M and discriminator 0.04 M parameters at 28 px (grey, 2 classes)
BATCH = 64  # images per discriminator update (WGAN-GP: per critic update)

# Per profile: the GANs' training images seen (epochs = images / training images, unless the
# `epochs` parameter says); the judge's and the TSTR classifiers' images seen (chapter 01 uses
# 48 000 for a binary set); WGAN-GP's critic updates per generator update; the images each
# validation FID uses; conditioned samples per class for the conditional accuracy; the provoked
# collapse's generator steps (against a frozen discriminator); the small-label trial's share of the labels, its seeds, and its
# classifiers' and GAN's images seen. `standard` runs the trial for one seed (the chapter's); the
# 3-seed answer comes from three chapter runs (bench/README.md).
CHAPTER_BUDGETS = {
    "smoke": {"epochs": 1, "gan_images": None, "clf_images": 800, "n_critic": 2, "n_val": 128, "n_cond": 25,
              "collapse_steps": 4, "sub_share": 0.25, "sub_seeds": 1, "sub_clf_images": 256, "sub_gan_images": 128},
    "standard": {"epochs": None, "gan_images": 24_000, "clf_images": 9000, "n_critic": 2, "n_val": 500, "n_cond": 500,
                 "collapse_steps": 80, "sub_share": 0.1, "sub_seeds": 1, "sub_clf_images": 4000,
                 "sub_gan_images": 4000},
    "paper": {"epochs": None, "gan_images": 240_000, "clf_images": 48_000, "n_critic": 5, "n_val": 2000, "n_cond": 2000,
              "collapse_steps": 300, "sub_share": 0.1, "sub_seeds": 5, "sub_clf_images": 48_000,
              "sub_gan_images": 60_000},
}


def gan_epochs(train: Split, images: int) -> int:
    """GAN epochs for about `images` training images seen (1 to 300)."""
    return int(min(300, max(1, round(images / len(train)))))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> [-1, 1] floats (the suite's normalisation)."""
    return normalize(images)


def build_gan(info, size: int, loss: str, *, run, label: str, conditional: bool = True, spectral: bool = False,
              width: int = WIDTH, z_dim: int = Z_DIM, seed: int | None = None) -> tuple[Generator, Discriminator]:
    """A generator and a discriminator (batch norm for "ns", layer norm for the WGAN-GP critic, no
    norm with `spectral`),
    each built under a seed derived from the run's seed (or `seed`) and `label`."""
    k = info.n_classes if conditional else 0
    G = run.build(Generator, z_dim, info.n_channels, k, width, size, label=f"{label}/G", seed=seed)
    norm = "none" if spectral else ("batch" if loss == "ns" else "layer")  # batch norm would undo the spectral bound
    D = run.build(Discriminator, info.n_channels, k, width, size, norm, spectral,
                  label=f"{label}/D", seed=seed)
    return G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)


def labels_like(split: Split, n: int, seed: int) -> torch.Tensor:
    """`n` class labels (n,) with the split's class shares (a seeded shuffle of its labels, repeated)."""
    y = split.labels[:, 0]
    reps = -(-n // len(y))
    g = torch.Generator().manual_seed(seed)
    return y.repeat(reps)[torch.randperm(len(y) * reps, generator=g)][:n].clone()


def synthetic_split(G: Generator, labels: torch.Tensor, info, *, seed: int, device=None) -> Split:
    """Generated images with their conditioned labels as a `Split` (uint8, like a real one): it
    trains a classifier with the same code as the real data (TSTR)."""
    x = sample(G, len(labels), labels=labels if G.n_classes else None, seed=seed, device=device)
    return Split(to_uint8(x), labels[:, None].long(), info, "synthetic")


def fid_to(extractor: DomainFeatures, reference: torch.Tensor, G: Generator, labels: torch.Tensor, seed: int,
           device=None) -> float:
    """Fréchet distance (direct) between the features of `reference` (N, D) and of samples of G
    conditioned on `labels`."""
    fake = sample(G, len(labels), labels=labels if G.n_classes else None, seed=seed, device=device)
    return frechet_distance(reference, features(extractor, to_float(to_uint8(fake))))


def train_gan(G: Generator, D: Discriminator, loss: str, train: Split, *, epochs: int, device, seed: int = 0,
              extractor: DomainFeatures | None = None, val: Split | None = None, n_val: int = 500,
              n_critic: int = 2, lr: float = 2e-4, grid: int = 8, progress: bool = False) -> History:
    """Train a GAN for `epochs` passes over `train` (the GANStep contract, batch `BATCH` per
    discriminator update). With `extractor` and `val`: after every epoch the domain Fréchet
    distance between `n_val` samples and `n_val` validation images; the epoch with the lowest
    is kept (validation chooses). `history.grids`: a fixed-noise grid (grid per class for a
    conditional G) after every epoch, (epochs, n, C, S, S)."""
    step = GANStep(G, D, loss, lr_g=lr, lr_d=lr, n_critic=n_critic, seed=seed)
    batch = BATCH * (n_critic if loss == "wgan-gp" else 1)
    if len(train) < batch:
        raise ValueError(f"{len(train)} training images are fewer than one batch ({batch}): use more images")
    batches = TensorLoader(train, batch, shuffle=True, device=device, drop_last=True, seed=seed)
    k = max(G.n_classes, 1)
    grid_labels = torch.arange(k).repeat_interleave(grid) if G.n_classes else None
    grids: list[torch.Tensor] = []
    evaluate, select_by = None, None
    if extractor is not None and val is not None:
        val = val.subset(min(n_val, len(val)), seed)
        ref = features(extractor, to_float(val.images))
        val_labels = val.labels[:, 0]
        select_by = "fid"

        def evaluate():
            grids.append(sample(G, grid * k, labels=grid_labels, seed=seed + 1, device=device))
            return {"fid": fid_to(extractor, ref, G, val_labels, seed + 2, device)}
    else:
        def evaluate():
            grids.append(sample(G, grid * k, labels=grid_labels, seed=seed + 1, device=device))
            return {}
    trainer = Trainer(step, epochs=epochs, device=device, evaluate=evaluate, select_by=select_by, mode="min",
                      progress=progress, amp=False)
    history = trainer.fit(batches)
    history.grids = torch.stack(grids)
    return history


def judge_epochs(train: Split, images: int) -> int:
    """Epochs for a classifier to see about `images` training images (at least 2)."""
    return max(2, standard_epochs(len(train), images, lo=2))


def build_judge(info, size: int, *, run, label: str, seed: int | None = None) -> torch.nn.Module:
    """Chapter 01's CompactResNet, built under the run's seed (or `seed`) and `label`."""
    return build_classifier(JUDGE, info, size, run=run, seed=seed, label=label)


def train_judge(model: torch.nn.Module, train: Split, val: Split, *, images: int, device, seed: int = 0) -> History:
    """Chapter 01's `standard` recipe for about `images` images seen, the best validation-AUC
    epoch kept. On real images: the judge (and TRTR); on generated ones: TSTR."""
    return train_classifier(model, train, val, device=device, seed=seed, progress=False,
                            **recipe("standard", train, judge_epochs(train, images)))


def subset_share(train: Split, share: float, seed: int) -> Split:
    """A stratified subset holding `share` of the training labels (at least one batch)."""
    return train.subset(max(BATCH, round(share * len(train))), seed)


def small_label_trial(train: Split, val: Split, info, size: int, *, share: float, seed: int, run, budgets: dict,
                      device=None, loss: str = "ns") -> dict:
    """One seed of the small-label trial: a classifier on `share` of the labels; a conditional
    GAN trained on that subset only (the labels it never saw stay unseen); a classifier on the
    subset plus as many generated images (with the subset's class shares), trained for twice the
    images so that both classifiers see each real image equally often. Returns both models, the
    GAN, the subset and the times."""
    device = device or run.device
    sub = subset_share(train, share, seed)
    t0 = time.perf_counter()
    base = build_judge(info, size, run=run, label="subset", seed=seed)
    train_judge(base, sub, val, images=budgets["sub_clf_images"], device=device, seed=seed)
    t_base = time.perf_counter() - t0
    G, D = build_gan(info, size, loss, run=run, label="subset-gan", seed=seed)
    t0 = time.perf_counter()
    train_gan(G, D, loss, sub, epochs=gan_epochs(sub, budgets["sub_gan_images"]), device=device, seed=seed,
              n_critic=budgets["n_critic"])
    syn = synthetic_split(G, labels_like(sub, len(sub), seed), info, seed=seed + 3, device=device)
    mixed = Split(torch.cat([sub.images, syn.images]), torch.cat([sub.labels, syn.labels]), info, "train")
    aug = build_judge(info, size, run=run, label="subset+gan", seed=seed)
    train_judge(aug, mixed, val, images=2 * budgets["sub_clf_images"], device=device, seed=seed)
    return {"seed": seed, "subset": sub, "base": base, "augmented": aug, "gan": G, "n_synthetic": len(syn),
            "seconds": {"base": t_base, "gan+augmented": time.perf_counter() - t0}}


def mean_sd(values) -> str:
    """'m ± s' over seeds (sample sd), or the single value when there is one."""
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f} (one run)"

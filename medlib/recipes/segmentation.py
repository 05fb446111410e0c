"""Recipes for segmentation (chapter 05): per dataset kind and profile, the U-Net's width
and depth, epochs, batches, patches and learning rate; the batches, the validation metrics
that choose the best epoch, the threshold and test-time augmentation chosen on validation,
short equal-budget runs for ablations, and the trivial baselines.

Two kinds of data: DRIVE (565×584 fundus images, trained on random 96/128 px patches,
"epochs" of a fixed number of batches) and everything else (DSB2018-96 and folders: whole
images, or patches covering each large image once per epoch). `abl` is the budget of each
ablation / loss-comparison run. Explained in chapter 05.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from medlib.data.batches import SegBatches
from medlib.data.heldout import refuse_sealed
from medlib.data.segmentation import SegDataset, SegSplit
from medlib.inference import predict_probs
from medlib.losses import make_loss
from medlib.metrics import segmentation as ms
from medlib.models.unet import build_unet
from medlib.train import History, fit

DRIVE = {
    "smoke": dict(epochs=2, width=8, depth=3, batch=4, patch=64, batches=6, lr=3e-3,
                  n_train=None, n_val=2, n_test=3, abl=dict(width=4, depth=2, batches=2, epochs=1, patch=64)),
    # chosen on validation among four budgets of ~equal cost (bench/seg_selection.py --dataset drive): sized for 5 min per chapter
    "standard": dict(epochs=20, width=8, depth=4, batch=16, patch=64, batches=60, lr=3e-3, eval_every=2,
                     n_train=None, n_test=None, abl=dict(width=8, depth=3, batch=16, batches=20, epochs=1, patch=64)),
    "paper": dict(epochs=60, width=32, depth=4, batch=16, patch=128, batches=100, lr=2e-3,
                  n_train=None, n_test=None, abl=dict(width=16, depth=4, batches=100, epochs=10, patch=96)),
}
WHOLE_IMAGES = {  # DSB2018-96 and folders
    "smoke": dict(epochs=3, width=8, depth=2, batch=16, patch=None, batches=None, lr=1e-2, max_batches=4,
                  n_train=64, n_val=16, n_test=24, abl=dict(width=4, depth=2, n_train=8, batch=8, epochs=1)),
    # epochs chosen on validation among 6, 8 and 10 (bench/seg_selection.py --dataset dsb2018_96)
    "standard": dict(epochs=8, width=16, depth=3, batch=16, patch=None, batches=None, lr=3e-3,
                     n_train=None, n_test=None, abl=dict(width=8, depth=3, n_train=160, batch=8, epochs=2)),
    "paper": dict(epochs=60, width=32, depth=4, batch=32, patch=None, batches=None, lr=2e-3,
                  n_train=None, n_test=None, abl=dict(width=16, depth=3, n_train=None, epochs=15)),
}


def defaults(dataset: str) -> dict[str, dict]:
    """Per-profile recipes for `medlib.setup(defaults=...)`: DRIVE's, or whole images'."""
    return DRIVE if dataset == "drive" else WHOLE_IMAGES


def select_metric(dataset: str) -> str:
    """What picks the best epoch on validation: pooled pixel AUC on DRIVE (the literature's
    headline), the mean per-image Dice elsewhere."""
    return "auc_pooled" if dataset == "drive" else "dice"


def foreground(probs: torch.Tensor) -> torch.Tensor:
    """(N, H, W) foreground probability of binary (N, H, W) or class (N, K, H, W) probabilities."""
    return probs if probs.ndim == 3 else 1 - probs[:, 0]


def make_batches(data: SegDataset, split: SegSplit, recipe: dict, device, seed: int = 0) -> SegBatches:
    """Training batches for a recipe: DRIVE's random patches; whole images; or, for folders of
    large images, patches that cover every training image once per epoch."""
    patch = recipe.get("patch")
    H, W = data.train.images.shape[-2:]
    f = 2 ** recipe["depth"]
    if patch is None and max(H, W) > 128:
        patch = min(96, min(H, W) // f * f)  # large folder images: train on patches that fit
    elif patch is None and (H % f or W % f):
        patch = min(H, W) // f * f  # the U-Net needs sizes divisible by 2^depth
    batches = recipe.get("batches")
    if batches is None and patch is not None:  # cover each image once per epoch
        per_image = math.ceil(H / patch) * math.ceil(W / patch)
        batches = min(math.ceil(len(split) * per_image / recipe.get("batch", 16)), recipe.get("max_batches", 10**6))
    aug = dict(flips=True, rot90=True, intensity=0.1 if data.name == "drive" else 0.0)
    return SegBatches(data, split, recipe.get("batch", 16), patch_size=patch, batches_per_epoch=batches,
                      device=device, seed=seed, aug=aug)


def val_metrics(model, data: SegDataset, split: SegSplit, device, depth: int, tta: bool = False,
                threshold: float = 0.5) -> dict:
    """Validation metrics at `threshold`: mean per-image Dice, pooled Dice and pooled pixel AUC."""
    probs = foreground(predict_probs(model, data, split, device, batch_size=4, multiple=2**depth, tta=tta))
    per, pooled = ms.summarize(probs, split.masks > 0, split.fov, threshold, with_hd95=False)
    return {"dice": float(per["dice"].mean()), "dice_pooled": pooled["dice"], "auc_pooled": pooled["auc"]}


def build_segmenter(run, name: str, data: SegDataset, width: int, depth: int, *, label: str = "model",
                    seed: int | None = None):
    """A U-Net variant for `data`, built under the run's seed (`run.build`, recorded)."""
    return run.build(build_unet, name, data.in_channels, data.out_channels, width=width, depth=depth,
                     label=label, seed=seed)


def train_segmenter(model, data: SegDataset, split: SegSplit, val: SegSplit, recipe: dict, *, device,
                    loss: str | object = "bce_dice", epochs: int | None = None, seed: int = 0,
                    progress: bool = False, checkpoint=None, resume: bool = False) -> History:
    """Train with a recipe and keep the epoch with the best validation `select_metric` (validated
    every `recipe["eval_every"]` epochs and after the last)."""
    refuse_sealed(split, val)
    loss_fn = make_loss(loss) if isinstance(loss, str) else loss
    select = select_metric(data.name)
    return fit(model, make_batches(data, split, recipe, device, seed), epochs=epochs or recipe["epochs"],
               loss_fn=loss_fn, lr=recipe["lr"], warmup_epochs=0.3 if data.name == "drive" else 0.0,
               evaluate=lambda: val_metrics(model, data, val, device, recipe["depth"]), select_by=select,
               eval_every=recipe.get("eval_every", 1), device=device, progress=progress, checkpoint=checkpoint,
               resume=resume)


def short_run(run, data: SegDataset, name: str = "unet", loss: str | object = "bce_dice", *, val: SegSplit,
              seed: int | None = None, **overrides):
    """One ablation / loss-comparison run at the recipe's `abl` budget, scored on VALIDATION
    at threshold 0.5: returns (model, metrics). `loss` is a name of `medlib.losses.LOSSES` or
    any loss function; `overrides` change the recipe (width, depth, ...)."""
    recipe = {**run.cfg, **run.cfg["abl"], **overrides}
    loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom loss")
    label = f"short:{name}:{loss_name}:{recipe['width']}x{recipe['depth']}"
    model = build_segmenter(run, name, data, recipe["width"], recipe["depth"], label=label, seed=seed)
    hist = train_segmenter(model, data, data.train.subset(recipe.get("n_train")), val, recipe,
                           device=run.device, loss=loss, seed=run.seed if seed is None else seed)
    probs = foreground(predict_probs(model, data, val, run.device, batch_size=4, multiple=2 ** recipe["depth"]))
    t = val.masks > 0
    per, pooled = ms.summarize(probs, t, val.fov, 0.5, with_hd95=False)
    thin = ms.thin_structure_mask(t)
    thin = thin if val.fov is None else thin & val.fov.bool()
    thin_recall = float(ms.sensitivity(probs >= 0.5, t, thin, pooled=True))
    return model, {"dice": float(per["dice"].mean()), "dice_pooled": pooled["dice"], "auc_pooled": pooled["auc"],
                   "sens_pooled": pooled["sens"], "spec_pooled": pooled["spec"], "thin_recall": thin_recall,
                   "params": sum(p.numel() for p in model.parameters()), "train_s": round(hist.train_seconds, 1)}


def choose_tta_and_threshold(model, data: SegDataset, val: SegSplit, device, depth: int, allow_tta: bool = True):
    """On VALIDATION: flip TTA if it raises the selection metric, then the threshold — the
    one maximising pooled Dice (F1) on DRIVE, 0.5 elsewhere. Returns (tta, threshold, table)."""
    select = select_metric(data.name)
    options = [False, True] if allow_tta else [False]
    table = {tta: val_metrics(model, data, val, device, depth, tta=tta) for tta in options}
    tta = max(options, key=lambda o: table[o][select])
    threshold = 0.5
    if data.name == "drive":
        probs = foreground(predict_probs(model, data, val, device, batch_size=4, multiple=2**depth, tta=tta))
        threshold = ms.best_threshold(probs, val.masks > 0, val.fov)
    return tta, threshold, table


def trivial_scores(split: SegSplit, dataset: str) -> torch.Tensor:
    """A baseline that learns nothing, (N, H, W) scores. DRIVE: the darkness of the image
    (vessels are dark; threshold it on validation). Elsewhere: Otsu's threshold per image,
    keeping the side with fewer pixels as foreground (nuclei are the minority; no labels used)."""
    from skimage.filters import threshold_otsu

    grey = split.images.float().mean(1) / 255  # (N, H, W)
    if dataset == "drive":
        return 1 - grey
    out = []
    for g in grey:
        m = g > threshold_otsu(g.numpy()) if g.max() > g.min() else torch.zeros_like(g, dtype=torch.bool)
        m = torch.as_tensor(np.asarray(m))
        out.append(m if m.float().mean() <= 0.5 else ~m)
    return torch.stack(out).float()


def trivial_name(dataset: str) -> str:
    return "image darkness" if dataset == "drive" else "Otsu threshold (minority side)"


"""Chapter 09's budgets and its models: the classifier to explain (chapter 01's CompactResNet
with its `standard` recipe, or chapter 07's ViT with its recipe) and the experiment models
(a marker detector, a shortcut-trained model, a model trained on permuted labels), each
trained with the same family's recipe. Explained in chapter 09."""

from __future__ import annotations

from dataclasses import replace

import torch

from medlib.data.medmnist import Split
from medlib.metrics.classification import BINARY, MULTICLASS
from medlib.recipes import vit as rv
from medlib.recipes.classification import budget_epochs, evaluation_tta, recipe

MODELS = ("compactresnet", "vit")

# Per profile: test images in the faithfulness, sanity and localisation tables (n_faith,
# n_sanity, n_local); validation images in the randomisation cascade (n_cascade), the figures
# (n_shown) and the completeness check (n_complete); the experiment models' budgets (training
# images, epochs; a split smaller than marker_train is repeated with new markers; the shortcut
# model sees at least shortcut_images); the methods' own budgets (IG steps, SmoothGrad samples,
# KernelSHAP coalitions, deletion/insertion steps). Chosen so that `standard` fits 5 minutes on
# 2 CPU cores with the default CNN; the marker detector trains 8 epochs because 4 left its
# validation AUC at 0.973 (it missed markers) and 8 reached 0.992.
CHAPTER_BUDGETS = {
    "smoke": {"epochs": 1, "n_faith": 16, "n_sanity": 8, "n_cascade": 4, "n_local": 16, "n_shown": 4,
              "n_complete": 2, "marker_train": 256, "marker_epochs": 2, "random_train": 128, "random_epochs": 2,
              "shortcut_epochs": 1, "shortcut_images": 256, "ig_steps": 8, "sg_samples": 4, "shap_samples": 16,
              "curve_steps": 8},
    "standard": {"epochs": None, "n_faith": 256, "n_sanity": 64, "n_cascade": 16, "n_local": 128, "n_shown": 6,
                 "n_complete": 4, "marker_train": 2000, "marker_epochs": 8, "random_train": 256, "random_epochs": 40,
                 "shortcut_epochs": 3, "shortcut_images": 14_000, "ig_steps": 32, "sg_samples": 16,
                 "shap_samples": 64, "curve_steps": 10},
    "paper": {"epochs": None, "n_faith": 1000, "n_sanity": 200, "n_cascade": 64, "n_local": 500, "n_shown": 8,
              "n_complete": 8, "marker_train": None, "marker_epochs": 10, "random_train": 1000, "random_epochs": 80,
              "shortcut_epochs": 10, "shortcut_images": 47_000, "ig_steps": 64, "sg_samples": 50,
              "shap_samples": 256, "curve_steps": 20},
}
SHORTCUT = {"p_positive": 1.0, "p_other": 0.0, "amplitude": 150.0}  # a bright stamp on every positive image, no other


def main_epochs(model: str, train: Split) -> int:
    """The explained model's epochs: chapter 01's (CNN) or chapter 07's (ViT) image budget."""
    return rv.main_epochs(train) if model == "vit" else budget_epochs(train)


def build(model: str, info, size: int, *, run, label: str) -> torch.nn.Module:
    """The chapter's classifier under the run's seed: chapter 01's CompactResNet or chapter 07's ViT."""
    from medlib.models.vit import ViT
    from medlib.recipes.classification import build_classifier

    if model == "vit":
        return run.build(ViT, info.n_channels, info.n_classes, size, **rv.model_kwargs(patch=rv.patch_for(size)), label=label)
    return build_classifier(model, info, size, run=run, label=label)


def training_kwargs(model: str, train: Split, epochs: int, augment: bool = True) -> dict:
    """`train_classifier` keywords of the family's recipe; `augment=False` also drops label
    smoothing (a model meant to memorise permuted labels)."""
    kw = rv.training_kwargs(train, epochs) if model == "vit" else recipe("standard", train, epochs)
    if not augment:
        kw.update(augment=None, label_smoothing=0.0)
    return kw


def tta(model: str, task: str) -> bool:
    """The family's test-time rule (flip averaging where its recipe's validation runs chose it)."""
    return rv.TTA if model == "vit" else evaluation_tta("standard", task)


def relabel(split: Split, labels: torch.Tensor, names: tuple[str, ...], title: str, images=None) -> Split:
    """A copy of a split with new labels (N,) and label names, e.g. 'marker' / 'no marker'."""
    info = replace(split.info, labels=names, title=title, task=BINARY if len(names) == 2 else MULTICLASS)
    return Split(split.images if images is None else images, labels.view(-1, 1).long(), info, split.name)

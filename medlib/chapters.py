"""The chapters and the parameters each accepts, in one place: where the notebooks are, their
`parameters` cells (read by papermill), and each chapter's valid datasets, models and choices.
A notebook passes `spec(chapter)` to `medlib.setup`; `medlib run` and `medlib sweep` call
`check(chapter, ...)` before starting a kernel, so a bad value costs no kernel start and reads
as one line."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from medlib import paths

NOTEBOOKS = paths.REPO_ROOT / "notebooks"


def notebooks_dir() -> Path:
    """The chapters' folder: $MEDLIB_NOTEBOOKS (a course of your own, or the tests' tiny chapter)
    or <repo>/notebooks."""
    env_dir = os.environ.get("MEDLIB_NOTEBOOKS")
    return Path(env_dir).expanduser().resolve() if env_dir else NOTEBOOKS


def notebooks() -> dict[str, Path]:
    """Chapter name -> notebook, e.g. '01_cnn' -> notebooks/01_cnn.ipynb."""
    return {p.stem: p for p in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))}


def find_chapter(name: str) -> tuple[str, Path]:
    """'01', 'cnn' or '01_cnn' -> ('01_cnn', its notebook); ValueError naming the valid ones."""
    chs = notebooks()
    if name in chs:
        return name, chs[name]
    matches = [c for c in chs if c.startswith(name + "_") or c.split("_", 1)[1] == name]
    if len(matches) == 1:
        return matches[0], chs[matches[0]]
    raise ValueError(f"unknown chapter {name!r}; valid chapters: {', '.join(chs) or '(none found)'}")


def notebook_parameters(nb: Path) -> dict[str, dict]:
    """The `parameters` cell of a notebook, read by papermill: {name: {default, type, help}}."""
    import papermill as pm

    return {p["name"]: p for p in pm.inspect_notebook(str(nb)).values()}


def parse_value(text: str):
    """'3' -> 3, '0.1' -> 0.1, 'None' -> None, 'True' -> True, anything else -> the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _data_tour() -> dict:
    from medlib.data import registry

    return dict(datasets=registry.flags(), choices={"size": [28, 64, 128, 224]})


def _cnn() -> dict:
    from medlib.data import registry
    from medlib.models.cnn import MODELS
    from medlib.recipes.classification import RECIPES

    return dict(datasets=registry.flags(2), models=list(MODELS),
                choices={"size": [28, 64, 128, 224], "recipe": [None, *RECIPES]})


def _rnn() -> dict:
    from medlib.data import registry
    from medlib.models.rnn import CELL_KINDS
    from medlib.recipes.volumes import RECIPES

    return dict(datasets=registry.flags(3), choices={"size": [28, 64], "cell": list(CELL_KINDS),
                                                     "recipe": [None, *RECIPES]})


def _autoencoders() -> dict:
    from medlib.data import registry
    from medlib.data.noise import NOISE_KINDS

    def has_normal(info) -> bool:  # the anomaly section trains on a "normal" class
        return not info.multilabel and sum(n.lower().startswith("normal") for n in info.labels) == 1

    grey = [f for f in registry.flags(2) if registry.info(f).n_channels == 1 and has_normal(registry.info(f))]
    return dict(datasets=grey, choices={"size": [28, 64, 128, 224], "noise": list(NOISE_KINDS),
                                        "latent": [2, 4, 8, 16, 32, 64, 128]})


def _vit() -> dict:
    from medlib.data import registry

    return dict(datasets=registry.flags(2), choices={"size": [28, 64, 128, 224], "patch_size": [None, 2, 4, 7, 8, 14, 16]})


def _xai() -> dict:
    from medlib.data import registry
    from medlib.recipes.xai import MODELS

    return dict(datasets=registry.flags(2), models=list(MODELS), choices={"size": [28, 64, 128, 224]})


def _transfer() -> dict:
    from medlib.data import registry
    from medlib.transfer import STRATEGIES

    flags = registry.flags(2)
    return dict(choices={"target": flags, "source": ["auto", *flags], "strategy": ["auto", *STRATEGIES],
                         "size": [28, 64, 128, 224]})


def _trust() -> dict:
    from medlib import active
    from medlib.data import registry
    from medlib.uncertainty import METHODS

    single = [f for f in registry.flags(2) if not registry.info(f).multilabel]  # temperature and conformal sets need one label
    return dict(datasets=single, choices={"size": [28, 64, 128, 224], "method": ["auto", *METHODS],
                                          "query": [*active.QUERIES, "all"]})


def _gans() -> dict:
    from medlib.data import registry
    from medlib.models.gan import LOSSES

    single = [f for f in registry.flags(2) if not registry.info(f).multilabel]  # a conditional GAN needs one label
    return dict(datasets=single, choices={"size": [28, 64, 128, 224], "loss": list(LOSSES)})


def _unet() -> dict:
    from medlib.data.segmentation import DATASETS
    from medlib.losses import LOSSES
    from medlib.models.unet import MODELS

    return dict(datasets=list(DATASETS), models=list(MODELS), choices={"loss": list(LOSSES)}, allow_path_dataset=True)


def _hybrids() -> dict:
    from medlib.data import registry
    from medlib.data.segmentation import DATASETS

    single = [f for f in registry.flags() if not registry.info(f).multilabel]  # fusion learners need one label
    return dict(datasets=single, choices={"size": [28, 64], "seg_dataset": [None, *DATASETS],
                                          "learner": ["auto", "gbm", "logistic"]})


SPECS = {"00_data_tour": _data_tour, "01_cnn": _cnn, "02_rnn": _rnn, "03_autoencoders": _autoencoders, "04_gans": _gans, "05_unet": _unet, "06_transfer_learning": _transfer, "07_vit": _vit, "08_hybrids": _hybrids, "09_xai": _xai, "11_trust": _trust}


def spec(chapter: str) -> dict:
    """`setup()` keyword arguments that name a chapter's valid datasets, models and choices."""
    return SPECS[chapter]() if chapter in SPECS else {}


def _type_name(x: Any) -> str:
    return type(x).__name__


def check(chapter: str, params: dict, defaults: dict) -> None:
    """Check `-p` values before a kernel starts: each value's type against the notebook's
    default (an int for an int, a bool for a bool, ...; None defaults accept anything), then
    the chapter's choices (`spec`). A value of None means "the notebook's default rule"."""
    for name, value in params.items():
        default = defaults.get(name)
        if default is None or value is None:
            continue
        if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float)) and not isinstance(default, bool)
                and not isinstance(value, (int, float))) or (isinstance(default, str) and not isinstance(value, str)):
            raise ValueError(f"{name} must be a {_type_name(default)} like its default {default!r}, "
                             f"got {value!r} ({_type_name(value)})")
    from medlib.config import validate  # torch comes with it: only when a value is checked

    given = {k: v for k, v in {**defaults, **params}.items() if v is not None}  # the defaults fill in
    rest = {k: v for k, v in given.items() if k not in ("profile", "seed", "epochs", "device")}
    validate(given.get("profile"), given.get("seed", 0), given.get("epochs"), given.get("device", "auto"), rest,
             **spec(chapter))
    if chapter == "05_unet" and given.get("mask_threshold") is not None and given.get("dataset") in spec(chapter)["datasets"]:
        raise ValueError(f"mask_threshold applies to folder datasets only; {given['dataset']!r} binarises its masks "
                         "itself: leave mask_threshold unset")
    if chapter == "06_transfer_learning" and "label_fraction" in given:
        from medlib.transfer import check_fraction

        check_fraction(given["label_fraction"])
    if chapter == "07_vit" and given.get("patch_size") is not None and given.get("size", 28) % given["patch_size"]:
        size = given.get("size", 28)
        raise ValueError(f"patch_size {given['patch_size']} does not divide size {size}; "
                         f"valid: {[p for p in spec(chapter)['choices']['patch_size'] if p and size % p == 0]}")

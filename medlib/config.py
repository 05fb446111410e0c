"""Profiles and `setup()`: the first call of every chapter notebook.

`setup()` validates every parameter (a clear `ValueError` listing the valid choices),
resolves derived values (papermill does not recompute them), seeds Python/NumPy/PyTorch,
picks the device, prints an environment report and creates the run directory. The `Run`
it returns builds every model under the run's seed (`run.build`), opens the sealed test
split once at the end (`run.open_test`) and writes results.json (`run.record`).
Explained in chapter 00 (data tour).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlib import env, paths
from medlib.data.heldout import HeldOut, TestSetSealed

# Budgets shared by every chapter. Chapter-specific values (epochs, subset sizes...)
# are passed to `setup(defaults=...)` per profile and merged over these.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "description": "CI and nbval: tiny stratified subsets, 1-2 epochs, <= 60 s per notebook",
        "epochs": 1,
        "max_train": 256,  # images per training split (stratified subset)
        "max_eval": 256,
        "bootstrap": 50,
    },
    "standard": {
        "description": "students and instructors: <= 5 min per chapter on 2 CPU cores",
        "epochs": 10,
        "max_train": None,  # None = the whole split
        "max_eval": None,
        "bootstrap": 1000,
    },
    "paper": {
        "description": "published protocols (e.g. MedMNIST v2: ResNet-18, 100 epochs), on a GPU",
        "epochs": 100,
        "max_train": None,
        "max_eval": None,
        "bootstrap": 1000,
    },
}
DEVICES = ("auto", "cpu", "cuda", "mps")


def default_profile() -> str:
    return os.environ.get("MEDLIB_PROFILE") or "standard"


def _choose(name: str, value: Any, choices) -> None:
    choices = list(choices)
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; valid choices: {shown}")


def _check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"{name} must be an integer >= {minimum}"
            + (" or None" if allow_none else "")
            + f", got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks cuda > mps > cpu; an explicit device must exist."""
    if not isinstance(device, str):
        raise ValueError(f"device must be a string such as 'auto' or 'cpu', got {device!r}")
    kind = device.split(":")[0]
    _choose("device", kind, DEVICES)
    has_mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is visible; use 'auto' or 'cpu'")
    if kind == "mps" and not has_mps:
        raise ValueError("device 'mps' was requested but Apple MPS is not available; use 'auto' or 'cpu'")
    return torch.device(device)


def _new_run_dir(chapter: str, params: dict) -> Path:
    """`$MEDLIB_RUN_DIR` when the CLI set it, else runs/<chapter>/<timestamp>-<tag>-<random>."""
    given = os.environ.get("MEDLIB_RUN_DIR")
    if given:
        path = Path(given).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return paths.new_run_dir(chapter, params)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Run:
    """What `setup()` resolved: parameters, profile budget, device, run directory."""

    chapter: str
    profile: str
    seed: int
    device: torch.device
    dir: Path
    data_dir: Path
    params: dict[str, Any]
    cfg: dict[str, Any]
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat())
    code: dict[str, Any] = field(default_factory=dict)  # git commit, dirty flag, fingerprint at setup()
    deterministic: bool = False
    init: dict[str, dict] = field(default_factory=dict)  # label -> {"seed", "checksum"} per built model
    test_opened: list[dict] = field(default_factory=list)  # when, and for what, the test split was opened
    reused: dict | None = None  # the earlier run whose trained model this run loaded (medlib.reuse)

    def __getattr__(self, name: str) -> Any:  # run.dataset, run.epochs, run.model ...
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        cfg = self.__dict__.get("cfg", {})
        if name in cfg:
            return cfg[name]
        raise AttributeError(name)

    def path(self, name: str) -> Path:
        """A file path inside the run directory (names cannot escape it)."""
        return paths.inside(self.dir / name, self.dir)

    def savefig(self, fig, name: str, dpi: int = 120) -> Path:
        """Save a matplotlib figure as PNG in the run directory."""
        out = self.path(name if name.endswith(".png") else f"{name}.png")
        fig.savefig(out, dpi=dpi, bbox_inches="tight")
        return out

    def seed_for(self, label: str = "model") -> int:
        """The seed a model called `label` is built with (see `env.derive_seed`)."""
        return env.derive_seed(self.seed, label)

    def build(self, factory, *args, label: str = "model", seed: int | None = None, **kwargs) -> torch.nn.Module:
        """`factory(*args, **kwargs)` under a seed derived from the run's seed and `label`, moved
        to the run's device; its initial weights' checksum is recorded in results.json.

        Every model of a chapter is built this way, so a different `-p seed` changes every
        initial weight and the same seed reproduces them. `seed` overrides the run's seed
        (e.g. the replicates of a multi-seed comparison: seed=k)."""
        if self.test_opened:
            raise TestSetSealed("this run already opened its test split; build and train every model "
                                "before the final evaluation (start a new run to train more)")
        s = env.derive_seed(self.seed if seed is None else seed, label)
        torch.manual_seed(s)
        model = factory(*args, **kwargs).to(self.device)
        entry, key, n = {"seed": s, "checksum": env.weights_checksum(model)}, label, 1
        while key in self.init and self.init[key] != entry:  # another model under the same label: keep both
            n += 1
            key = f"{label} #{n}"
        self.init[key] = entry
        return model

    def open_test(self, data, purpose: str = "final evaluation"):
        """The test split of `data`, opened once at the end of the run and recorded.

        Call it after every model is trained and every choice made on validation; a medlib
        final-evaluation function (`medlib.evaluation`) calls it for you."""
        test = data.test
        if not isinstance(test, HeldOut):
            raise TypeError(f"expected a dataset whose test split is sealed (HeldOut), got {type(test).__name__}")
        self.test_opened.append({"at": _dt.datetime.now(_dt.UTC).isoformat(), "purpose": purpose})
        if len(self.test_opened) > 1:
            print(f"note: the test split of this run was opened {len(self.test_opened)} times "
                  "(recorded in results.json)")
        return test.open(purpose)

    def record(self, metrics: dict, **extra: Any) -> Path:
        """Write results.json (atomically) with the schema of docs/design.md."""
        from medlib.results import write_results

        return write_results(self, metrics, **extra)

    def report(self) -> str:
        v = env.library_versions()
        det = "  (deterministic algorithms)" if self.deterministic else ""
        lines = [
            f"chapter   {self.chapter}   profile {self.profile} ({PROFILES[self.profile]['description']})",
            "params    " + ", ".join(f"{k}={v!r}" for k, v in self.params.items()),
            f"device    {self.device} - {env.device_name(self.device)}{det}",
            "versions  " + ", ".join(f"{k} {val}" for k, val in v.items()),
            f"data dir  {self.data_dir}",
            f"run dir   {self.dir}",
        ]
        return "\n".join(lines)


def validate(profile, seed, epochs, device, params: dict, *, datasets=None, models=None,
             choices: dict[str, list] | None = None, allow_path_dataset: bool = False):
    """Check a chapter's parameters; returns (profile, device). A ValueError names the
    parameter and lists the valid choices. Used by `setup()` and, before a kernel starts, by
    `medlib run` (through `medlib.chapters.check`)."""
    profile = profile or default_profile()
    _choose("profile", profile, PROFILES)
    _check_int("seed", seed, 0)
    _check_int("epochs", epochs, 1, allow_none=True)
    dev = resolve_device(device)
    if "dataset" in params and datasets is not None:
        ds = params["dataset"]
        if not isinstance(ds, str):
            raise ValueError(f"dataset must be a string, got {ds!r}")
        is_path = allow_path_dataset and ("/" in ds or os.sep in ds)
        if is_path:
            if not Path(ds).expanduser().is_dir():
                raise ValueError(f"dataset folder {ds!r} does not exist (expected <dir>/images and <dir>/masks)")
        else:
            _choose("dataset", ds, datasets)
    if "model" in params and models is not None:
        _choose("model", params["model"], models)
    for name, valid in (choices or {}).items():
        if name in params:
            _choose(name, params[name], valid)
    return profile, dev


def setup(
    chapter: str,
    *,
    profile: str | None = None,
    seed: int = 0,
    device: str = "auto",
    epochs: int | None = None,
    datasets=None,
    models=None,
    choices: dict[str, list] | None = None,
    defaults: dict[str, dict[str, Any]] | None = None,
    data_dir: str | None = None,
    allow_path_dataset: bool = False,
    deterministic: bool | None = None,
    verbose: bool = True,
    **params: Any,
) -> Run:
    """Validate a chapter's parameters and prepare its run.

    - `datasets` / `models`: the valid names for `params['dataset']` / `params['model']`.
    - `choices`: valid values for any other parameter, e.g. {"size": [28, 64]}.
    - `defaults`: per-profile chapter values, e.g. {"smoke": {"epochs": 1}, ...};
      `epochs=None` resolves to the profile's value.
    - `allow_path_dataset`: a dataset may also be an existing folder path.
    - `deterministic`: deterministic kernels (`env.set_determinism`); None reads
      $MEDLIB_DETERMINISTIC (`medlib run --deterministic` sets it).
    """
    profile, dev = validate(profile, seed, epochs, device, params, datasets=datasets, models=models,
                            choices=choices, allow_path_dataset=allow_path_dataset)

    cfg = dict(PROFILES[profile])
    cfg.update((defaults or {}).get(profile, {}))
    if epochs is None:
        epochs = cfg["epochs"]
    params = {**params, "epochs": epochs, "seed": seed, "device": device}

    deterministic = _env_flag("MEDLIB_DETERMINISTIC") if deterministic is None else bool(deterministic)
    env.set_determinism(deterministic)
    env.seed_everything(seed)
    run = Run(
        chapter=chapter,
        profile=profile,
        seed=seed,
        device=dev,
        dir=_new_run_dir(chapter, params),
        data_dir=paths.data_dir(data_dir),
        params=params,
        cfg=cfg,
        code=env.code_state(),
        deterministic=deterministic,
    )
    if verbose:
        print(run.report())
    return run

"""The instructor's path: reuse the model an earlier run trained with the same parameters.

Every trained chapter model is saved in its run directory (`<label>.pt`, loaded with
`weights_only=True`, and `<label>.json` beside it: the parameters, the weights' checksum,
the code fingerprint). A run with `reuse=True` looks for the newest earlier run of the same
chapter whose parameters match (all but `reuse` and `device`), loads its weights instead of
training, checks the checksum, and says which run it came from; with none, it trains and
says so. Same weights, same data: the same test metrics. Explained in chapter 01.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from medlib import env, paths
from medlib.io import save_torch_atomic, write_json_atomic
from medlib.train import History

IGNORED = ("reuse", "device")  # parameters that do not change the trained weights


def _key(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in IGNORED}


def find(run, label: str = "model") -> Path | None:
    """The newest saved `<label>.pt` of an earlier run of this chapter with the same parameters."""
    root = paths.runs_dir() / run.chapter
    want = json.dumps(_key(run.params), sort_keys=True, default=str)
    for meta in sorted(root.glob(f"*/{label}.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        if meta.parent == run.dir:
            continue
        try:
            info = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if json.dumps(_key(info.get("params", {})), sort_keys=True, default=str) == want and \
                (meta.parent / f"{label}.pt").exists():
            return meta.parent / f"{label}.pt"
    return None


def save(run, model: torch.nn.Module, history: History, label: str = "model") -> Path:
    """Save the trained weights and history in the run directory, for later reuse."""
    path = run.path(f"{label}.pt")
    save_torch_atomic({"state_dict": model.state_dict(), "history": history.epochs, "best_epoch": history.best_epoch,
                       "best_score": history.best_score, "select_by": history.select_by}, path)
    write_json_atomic(run.path(f"{label}.json"), {
        "chapter": run.chapter, "label": label, "params": run.params, "checksum": env.weights_checksum(model),
        "code_fingerprint": run.code.get("code_fingerprint"), "git_commit": run.code.get("git_commit")})
    return path


def train_or_reuse(run, model: torch.nn.Module, train: Callable[[], History], label: str = "model") -> History:
    """`train()` and save the model — or, with the run's `reuse` parameter set, load the model an
    earlier run with the same parameters saved (its history too) and skip training."""
    if run.params.get("reuse"):
        path = find(run, label)
        if path is None:
            print(f"reuse=True: no earlier run of {run.chapter} with these parameters saved a {label!r}; "
                  "training now (it is saved for the next time)")
        else:
            state = torch.load(path, map_location=run.device, weights_only=True)
            model.load_state_dict(state["state_dict"])
            info = json.loads(path.with_suffix(".json").read_text())
            if env.weights_checksum(model) != info["checksum"]:
                raise RuntimeError(f"{path} does not match the checksum recorded beside it; it was changed "
                                   "after it was saved. Delete that run or train again with reuse=False")
            hist = History(epochs=state["history"], best_epoch=state["best_epoch"], best_score=state["best_score"],
                           select_by=state["select_by"])
            same_code = info.get("code_fingerprint") == run.code.get("code_fingerprint")
            print(f"reuse=True: loaded the {label!r} trained by run {path.parent.name} (checksum {info['checksum']}); "
                  f"training skipped ({hist.train_seconds:.0f} s of training then)"
                  + ("" if same_code else "; note: that run used other code (commit "
                     f"{str(info.get('git_commit'))[:10]}), the architecture matched"))
            run.reused = {"label": label, "from": str(path.parent), "checksum": info["checksum"]}
            return hist
    hist = train()
    save(run, model, hist, label)
    return hist

"""Shared helpers of the benchmarks: the machine description, JSON output, mean ± sd cells."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from medlib.env import cpu_name
from medlib.io import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What a reader needs to judge the numbers: CPU, cores, threads, load, versions."""
    return {
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def finish(info: dict) -> dict:
    info["loadavg_end"] = list(os.getloadavg())
    info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return info


def write(name: str, obj: dict) -> Path:
    """Write bench/results/<name>.json atomically (replacing the previous version)."""
    return write_json_atomic(RESULTS / f"{name}.json", obj, overwrite=True, indent=1)


def already_run(out: dict, flag: str, candidate: str, seed: int) -> bool:
    """Whether a selection's results already hold this (dataset, candidate, seed): reruns resume."""
    return any(r["dataset"] == flag and r["candidate"] == candidate and r["seed"] == seed for r in out["runs"])


def add_run(out: dict, name: str, run: dict, decide) -> None:
    """Keep one selection run, print it, refresh the decision (`decide(runs)`) and save
    results/<name>.json, so an interrupted selection loses at most the run in progress."""
    out["runs"].append(run)
    print(run["dataset"], run["candidate"], run["seed"], f"{run['train_seconds']:.0f}s", json.dumps(run["val"]),
          flush=True)
    out["decision"] = decide(out["runs"])
    write(name, out)


def conclude(out: dict, name: str, decide) -> None:
    """The final decision over every run kept, the machine's end state, printed and saved."""
    out["decision"] = decide(out["runs"])
    finish(out["machine"])
    print(json.dumps(out["decision"], indent=1))
    print("wrote", write(name, out))


def per_dataset(runs: list[dict], candidate: str, datasets: list[str], metrics: tuple[str, ...],
                means: tuple[str, ...] = ("score", "train_seconds"), min_seeds: int = 2) -> dict:
    """A candidate's runs summarised per dataset where it has >= `min_seeds` of them: [mean, std]
    of each validation metric, and the mean of each key in `means`."""
    out = {}
    for flag in datasets:
        rs = [r for r in runs if r["candidate"] == candidate and r["dataset"] == flag]
        if len(rs) >= min_seeds:
            out[flag] = {k: [float(np.mean([r["val"][k] for r in rs])), float(np.std([r["val"][k] for r in rs]))]
                         for k in metrics}
            out[flag].update({k: float(np.mean([r[k] for r in rs])) for k in means})
    return out


def ms(values, fmt: str = "{:.3f}") -> str:
    """A table cell: mean ± sample sd (ddof 1) of the finite values, "x (one run)" for one, "" for none."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return ""
    if len(v) == 1:
        return fmt.format(v[0]) + " (one run)"
    return fmt.format(v.mean()) + " ± " + fmt.replace("+", "").format(v.std(ddof=1))

"""Shared helpers of the benchmarks: the machine description and JSON output."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

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

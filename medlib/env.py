"""The environment a run depends on: seeds and determinism, the device's name, library
versions, and the code itself (git commit + a fingerprint of uncommitted changes).
Explained in chapter 00."""

from __future__ import annotations

import hashlib
import os
import platform
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from medlib import paths

# Files whose content can change a run's numbers (untracked ones count toward the fingerprint).
SOURCE_SUFFIXES = (".py", ".ipynb", ".toml", ".cfg", ".yml", ".yaml", ".ini", ".txt")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def derive_seed(seed: int, label: str) -> int:
    """A reproducible seed for one model of a run: the run's seed and the model's label hashed
    together, so that two models of one run start differently and a rerun starts the same."""
    digest = hashlib.sha256(f"{int(seed)}:{label}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def set_determinism(on: bool = True) -> None:
    """Deterministic kernels (as MONAI's set_determinism): an op without a deterministic
    implementation raises instead of silently varying. On a CUDA GPU this costs speed."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = False


def weights_checksum(model: torch.nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of a model's state: parameter names, shapes and values."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "numpy", "medmnist", "monai", "captum", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"{cpu_name()} ({os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads)"
    return device.type


# ----------------------------------------------------------------------------- the code
def _git(*args: str, text: bool = True):
    try:
        out = subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=text, timeout=10)
        return out.stdout if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def code_state() -> dict:
    """The code a run starts from: HEAD's commit, whether anything differs from it, and a
    fingerprint = hash(commit, the diff of tracked files, the untracked source files).

    Two runs with the same fingerprint ran the same code; `medlib run --skip-done` uses it."""
    commit = (_git("rev-parse", "HEAD") or "").strip() or None
    diff = _git("diff", "HEAD", "--binary", text=False)  # staged and unstaged changes of tracked files
    listed = _git("ls-files", "--others", "--exclude-standard", "-z")
    untracked = sorted(p for p in (listed or "").split("\0") if p.endswith(SOURCE_SUFFIXES))
    h_untracked = hashlib.sha256()
    for rel in untracked:
        try:
            h_untracked.update(rel.encode() + b"\0" + (paths.REPO_ROOT / rel).read_bytes())
        except OSError:
            continue
    diff_sha = hashlib.sha256(diff or b"").hexdigest()
    known = commit is not None and diff is not None and listed is not None
    fingerprint = hashlib.sha256(f"{commit}:{diff_sha}:{h_untracked.hexdigest()}".encode()).hexdigest()[:16]
    return {
        "git_commit": commit,
        "git_dirty": (bool(diff) or bool(untracked)) if known else None,
        "code_diff_sha256": diff_sha if diff else None,
        "untracked_sources": untracked,
        "code_fingerprint": fingerprint if known else None,
    }

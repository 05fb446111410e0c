import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Every test writes runs into its own temporary folder and sees no CLI run dir."""
    monkeypatch.setenv("MEDLIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("MEDLIB_RUN_DIR", raising=False)


def real_data_dir() -> Path | None:
    """The folder with the real MedMNIST files: $MEDLIB_DATA or ../shared/datasets."""
    env = os.environ.get("MEDLIB_DATA")
    for cand in ([Path(env)] if env else []) + [SHARED]:
        if (cand / "medmnist").is_dir():
            return cand
    return None


@pytest.fixture
def data_root():
    root = real_data_dir()
    if root is None:
        pytest.skip("real MedMNIST files not found (set MEDLIB_DATA)")
    return root

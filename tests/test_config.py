import pytest
import torch

import medlib
from medlib import paths
from medlib.config import resolve_device, setup

DATASETS = ["pneumoniamnist", "breastmnist"]


def _setup(**kw):
    args = dict(profile="smoke", dataset="pneumoniamnist", model="cnn", datasets=DATASETS,
                models=["cnn", "resnet18"], verbose=False)
    args.update(kw)
    return setup("99_test", **args)


def test_setup_resolves_profile_epochs_and_device():
    run = _setup(defaults={"smoke": {"epochs": 2, "lr": 0.1}})
    assert run.epochs == 2 and run.lr == 0.1 and run.cfg["max_train"] == 256
    assert run.params["epochs"] == 2
    assert run.device == torch.device("cuda" if torch.cuda.is_available() else "cpu") or run.device.type == "mps"
    assert run.dir.is_dir() and paths.runs_dir() in run.dir.parents


def test_explicit_epochs_win_over_profile():
    assert _setup(epochs=7).epochs == 7


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("MEDLIB_PROFILE", "paper")
    assert _setup(profile=None).profile == "paper"
    monkeypatch.delenv("MEDLIB_PROFILE")
    assert _setup(profile=None).profile == "standard"


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"dataset": "nosuch"}, "valid choices: 'pneumoniamnist', 'breastmnist'"),
        ({"model": "vgg"}, "valid choices: 'cnn', 'resnet18'"),
        ({"profile": "fast"}, "'smoke', 'standard', 'paper'"),
        ({"device": "tpu"}, "'auto', 'cpu', 'cuda', 'mps'"),
        ({"epochs": -1}, "epochs must be >= 1"),
        ({"epochs": 2.5}, "epochs must be an integer"),
        ({"epochs": True}, "epochs must be an integer"),
        ({"epochs": "3"}, "epochs must be an integer"),
        ({"seed": -3}, "seed must be >= 0"),
        ({"dataset": 3}, "dataset must be a string"),
        ({"size": 100, "choices": {"size": [28, 64]}}, "valid choices: 28, 64"),
    ],
)
def test_setup_rejects_bad_parameters(kw, message):
    with pytest.raises(ValueError) as e:
        _setup(**kw)
    assert message in str(e.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU is visible"):
        resolve_device("cuda")


def test_seeding_is_reproducible():
    _setup(seed=5)
    a = torch.rand(3)
    _setup(seed=5)
    assert torch.equal(a, torch.rand(3))


def test_runs_never_share_a_directory():
    dirs = {_setup().dir for _ in range(5)}
    assert len(dirs) == 5


def test_run_paths_cannot_escape(tmp_path):
    run = _setup()
    with pytest.raises(ValueError, match="outside"):
        run.path("../../evil.txt")
    for bad in ("../x", "a/b", "..", "", " x", "a b"):
        with pytest.raises(ValueError, match="invalid run name"):
            paths.safe_name(bad)
    assert paths.safe_name("seed-1_v2.0") == "seed-1_v2.0"


def test_run_dir_from_cli_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLIB_RUN_DIR", str(tmp_path / "cli-run"))
    assert _setup().dir == (tmp_path / "cli-run").resolve()


def test_environment_report_is_printed(capsys):
    _setup(verbose=True)
    out = capsys.readouterr().out
    for word in ("profile smoke", "torch", "device", "data dir", "run dir"):
        assert word in out


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDLIB_DATA", raising=False)
    assert paths.data_dir() == paths.REPO_ROOT / "datasets"
    monkeypatch.setenv("MEDLIB_DATA", str(tmp_path / "env"))
    assert paths.data_dir() == (tmp_path / "env").resolve()
    assert paths.data_dir(tmp_path / "arg") == (tmp_path / "arg").resolve()


def test_import_has_no_side_effects():
    assert medlib.__version__

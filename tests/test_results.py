import json

import pytest

from medlib import baselines, env, results
from medlib.config import setup
from medlib.io import write_json_atomic


def test_baseline_tables_hold_the_published_numbers():
    assert baselines.medmnist_baseline("pneumoniamnist") == {"auc": 0.944, "acc": 0.854}
    assert baselines.medmnist_baseline("breastmnist") == {"auc": 0.901, "acc": 0.863}
    assert baselines.medmnist_baseline("retinamnist")["acc"] == 0.524
    assert baselines.medmnist_baseline("adrenalmnist3d") == {"auc": 0.827, "acc": 0.721}
    assert baselines.best_baseline("pneumoniamnist")[1] == {"auc": 0.991, "acc": 0.946}
    assert len(baselines.medmnist_baselines("pathmnist")) == 7
    assert len(baselines.medmnist_baselines("vesselmnist3d")) == 8
    assert len(baselines.MEDMNIST_V2) == 18 and "Scientific Data" in baselines.MEDMNIST_V2_SOURCE
    assert baselines.DRIVE_BASELINES["IterNet (Li et al., WACV 2020)"] == {"auc_pooled": 0.9816, "dice_pooled": 0.8205}
    with pytest.raises(ValueError, match="valid choices"):
        baselines.medmnist_baseline("pneumoniamnist", "VGG")


def test_record_writes_the_schema_once():
    run = setup("99_test", profile="smoke", dataset="breastmnist", model="cnn", verbose=False)
    path = run.record({"test": {"auc": 0.9, "acc": 0.8}, "val": {"auc": 0.91}},
                      model_params=1234, train_seconds=1.5, images_per_s=100.0)
    r = json.loads(path.read_text())
    for key in ("chapter", "dataset", "size", "model", "profile", "params", "seed", "metrics",
                "model_params", "train_seconds", "images_per_s", "device", "versions",
                "git_commit", "git_dirty", "code_fingerprint", "untracked_sources", "init", "test_opened",
                "timestamp"):
        assert key in r, key
    assert r["metrics"]["test"]["auc"] == 0.9 and r["dataset"] == "breastmnist"
    with pytest.raises(FileExistsError):
        run.record({"test": {"auc": 0.5}})
    assert json.loads(path.read_text())["metrics"]["test"]["auc"] == 0.9


@pytest.mark.parametrize("key", ["git_commit", "git_dirty", "code_fingerprint", "seed", "init", "test_opened"])
def test_extra_fields_cannot_overwrite_what_medlib_writes(key):
    run = setup("99_test", profile="smoke", verbose=False)
    with pytest.raises(ValueError, match=f"'{key}' is written by medlib"):
        run.record({"test": {"auc": 0.9}}, **{key: "mine"})
    assert not run.path("results.json").exists()


def test_record_rejects_flat_metrics():
    run = setup("99_test", profile="smoke", verbose=False)
    with pytest.raises(ValueError, match="split"):
        run.record({"auc": 0.9})


def test_nan_becomes_null_and_no_temp_files_remain(tmp_path):
    p = write_json_atomic(tmp_path / "r.json", {"x": float("nan"), "y": [1.0]})
    assert json.loads(p.read_text()) == {"x": None, "y": [1.0]}
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]


def test_leaderboard_collects_runs():
    for seed in (0, 1):
        run = setup("99_test", profile="smoke", dataset="breastmnist", model="cnn", seed=seed, verbose=False)
        run.record({"test": {"auc": 0.8 + seed / 10}})
    setup("10_report", profile="smoke", verbose=False).record({})  # a report measures no model: not a row
    df = results.leaderboard()
    assert len(df) == 2 and sorted(df["auc"].round(3)) == [0.8, 0.9]


def test_leaderboard_tables_one_per_chapter_without_empty_columns():
    run = setup("98_seg", profile="smoke", dataset="drive", model="unet", verbose=False)
    run.record({"test": {"dice": 0.8, "dice_pooled": 0.81, "auc_pooled": 0.97, "dice_per_class": {"1": 0.5}}})
    run = setup("99_test", profile="smoke", dataset="breastmnist", model="cnn", verbose=False)
    run.record({"test": {"auc": 0.9, "auc_lo": 0.85, "auc_hi": 0.95}})
    tables = results.leaderboard_tables(results.leaderboard())
    assert list(tables) == ["98_seg", "99_test"]
    assert "dice" in tables["98_seg"] and "dice_pooled" not in tables["98_seg"]
    assert "dice_per_class" not in tables["98_seg"]  # nested values stay in results.json
    assert "dice" not in tables["99_test"] and "auc_lo" not in tables["99_test"]
    full = results.leaderboard_tables(results.leaderboard(), full=True)
    assert "dice_pooled" in full["98_seg"] and "auc_lo" in full["99_test"]


def test_code_state_is_taken_when_the_run_starts(monkeypatch):
    monkeypatch.setattr(env, "code_state", lambda: {"git_commit": "aaaa", "git_dirty": False, "code_fingerprint": "f1"})
    run = setup("99_test", profile="smoke", verbose=False)
    monkeypatch.setattr(env, "code_state", lambda: {"git_commit": "bbbb", "git_dirty": True, "code_fingerprint": "f2"})
    r = json.loads(run.record({"test": {"auc": 0.5}}).read_text())
    assert (r["git_commit"], r["git_dirty"], r["code_fingerprint"]) == ("aaaa", False, "f1")


def test_code_fingerprint_sees_untracked_sources(tmp_path, monkeypatch):
    """A new, uncommitted module changes the fingerprint and makes the tree dirty."""
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x")
    monkeypatch.setattr(env.paths, "REPO_ROOT", repo)
    clean = env.code_state()
    assert clean["git_dirty"] is False and clean["untracked_sources"] == []
    (repo / "new_module.py").write_text("x = 1\n")
    (repo / "notes.md").write_text("not a source file\n")
    dirty = env.code_state()
    assert dirty["git_dirty"] is True and dirty["untracked_sources"] == ["new_module.py"]
    assert dirty["code_fingerprint"] != clean["code_fingerprint"]
    (repo / "new_module.py").write_text("x = 2\n")
    assert env.code_state()["code_fingerprint"] != dirty["code_fingerprint"]  # its content counts

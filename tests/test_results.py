import json

import pytest

from medlib import results
from medlib.config import setup


def test_baseline_tables_hold_the_published_numbers():
    assert results.medmnist_baseline("pneumoniamnist") == {"auc": 0.944, "acc": 0.854}
    assert results.medmnist_baseline("breastmnist") == {"auc": 0.901, "acc": 0.863}
    assert results.medmnist_baseline("retinamnist")["acc"] == 0.524
    assert results.medmnist_baseline("adrenalmnist3d") == {"auc": 0.827, "acc": 0.721}
    assert results.best_baseline("pneumoniamnist")[1] == {"auc": 0.991, "acc": 0.946}
    assert len(results.medmnist_baselines("pathmnist")) == 7
    assert len(results.medmnist_baselines("vesselmnist3d")) == 8
    assert len(results.MEDMNIST_V2) == 18 and "Scientific Data" in results.MEDMNIST_V2_SOURCE
    with pytest.raises(ValueError, match="valid choices"):
        results.medmnist_baseline("pneumoniamnist", "VGG")


def test_record_writes_the_schema_once():
    run = setup("99_test", profile="smoke", dataset="breastmnist", model="cnn", verbose=False)
    path = run.record({"test": {"auc": 0.9, "acc": 0.8}, "val": {"auc": 0.91}},
                      model_params=1234, train_seconds=1.5, images_per_s=100.0)
    r = json.loads(path.read_text())
    for key in ("chapter", "dataset", "size", "model", "profile", "params", "seed", "metrics",
                "model_params", "train_seconds", "images_per_s", "device", "versions",
                "git_commit", "git_dirty", "timestamp"):
        assert key in r, key
    assert r["metrics"]["test"]["auc"] == 0.9 and r["dataset"] == "breastmnist"
    with pytest.raises(FileExistsError):
        run.record({"test": {"auc": 0.5}})
    assert json.loads(path.read_text())["metrics"]["test"]["auc"] == 0.9


def test_record_rejects_flat_metrics():
    run = setup("99_test", profile="smoke", verbose=False)
    with pytest.raises(ValueError, match="split"):
        run.record({"auc": 0.9})


def test_nan_becomes_null_and_no_temp_files_remain(tmp_path):
    p = results.write_json_atomic(tmp_path / "r.json", {"x": float("nan"), "y": [1.0]})
    assert json.loads(p.read_text()) == {"x": None, "y": [1.0]}
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]


def test_leaderboard_collects_runs():
    for seed in (0, 1):
        run = setup("99_test", profile="smoke", dataset="breastmnist", model="cnn", seed=seed, verbose=False)
        run.record({"test": {"auc": 0.8 + seed / 10}})
    df = results.leaderboard()
    assert len(df) == 2 and sorted(df["auc"].round(3)) == [0.8, 0.9]


def test_leaderboard_tables_one_per_chapter_without_empty_columns():
    run = setup("98_seg", profile="smoke", dataset="drive", model="unet", verbose=False)
    run.record({"test": {"dice": 0.8, "dice_pooled": 0.81, "auc": 0.97}})
    run = setup("99_test", profile="smoke", dataset="breastmnist", model="cnn", verbose=False)
    run.record({"test": {"auc": 0.9, "auc_lo": 0.85, "auc_hi": 0.95}})
    tables = results.leaderboard_tables(results.leaderboard())
    assert list(tables) == ["98_seg", "99_test"]
    assert "dice" in tables["98_seg"] and "dice_pooled" not in tables["98_seg"]
    assert "dice" not in tables["99_test"] and "auc_lo" not in tables["99_test"]
    full = results.leaderboard_tables(results.leaderboard(), full=True)
    assert "dice_pooled" in full["98_seg"] and "auc_lo" in full["99_test"]


def test_code_state_is_taken_when_the_run_starts(monkeypatch):
    monkeypatch.setattr(results, "git_state", lambda: {"git_commit": "aaaa", "git_dirty": False})
    run = setup("99_test", profile="smoke", verbose=False)
    monkeypatch.setattr(results, "git_state", lambda: {"git_commit": "bbbb", "git_dirty": True})
    r = json.loads(run.record({"test": {"auc": 0.5}}).read_text())
    assert (r["git_commit"], r["git_dirty"]) == ("aaaa", False)

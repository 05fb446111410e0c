"""`medlib report`: mean ± std per configuration, code versions never pooled silently, reused
runs not averaged, published rows beside ours, a self-contained HTML page."""

import json

import numpy as np
import pytest

from medlib.cli import main
from medlib.report import build_report, load_records, runs_frame, summarise


def _record(root, name, seed, auc, commit="a" * 40, reused=None, chapter="01_cnn", dataset="pneumoniamnist",
            flat=False, **params):
    r = {"chapter": chapter, "dataset": dataset, "size": 28, "model": "compactresnet", "profile": "standard",
         "params": {"dataset": dataset, "seed": seed, "device": "auto", **params}, "seed": seed,
         "metrics": {"test": {"auc": auc, "acc": auc - 0.1, "auc_lo": auc - 0.02}}, "device": "cpu",
         "git_commit": commit, "git_dirty": False, "code_fingerprint": commit[:16], "reused": reused,
         "model_params": 260_000, "train_seconds": 100.0 + seed}
    if flat:
        (root / f"{name}.json").write_text(json.dumps(r))
        return
    d = root / chapter / name
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps(r))
    (d / "run.json").write_text(json.dumps({"status": "ok", "seconds": 120.0 + seed}))


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for s, auc in enumerate([0.95, 0.96, 0.97]):
        _record(root, f"a{s}", s, auc)
    _record(root, "b0", 0, 0.90, commit="b" * 40)  # the same configuration on other code
    _record(root, "r0", 0, 0.95, reused="runs/01_cnn/a0")  # repeats a0's numbers
    _record(root, "lr", 0, 0.80, recipe="paper")  # another configuration
    return root


def test_mean_and_std_per_configuration_and_code(runs):
    frame = runs_frame(load_records(runs))
    assert len(frame) == 6 and frame["run_seconds"].notna().all()  # run.json's seconds are read
    t = summarise(frame)["01_cnn"].set_index("code")
    a = t.loc["aaaaaaa"]
    a = a[a["settings"] == "{}"].iloc[0]
    assert a["n"] == 3 and a["seeds"] == "0,1,2"  # the reused run is not averaged
    assert a["auc_mean"] == pytest.approx(0.96) and a["auc_std"] == pytest.approx(np.std([0.95, 0.96, 0.97]))
    assert t.loc["bbbbbbb"]["n"] == 1  # other code: its own row
    pooled = summarise(frame, across_code=True)["01_cnn"]
    row = pooled[pooled["settings"] == "{}"].iloc[0]
    assert row["n"] == 4 and row["n_code"] == 2 and row["auc_mean"] == pytest.approx(np.mean([0.95, 0.96, 0.97, 0.90]))


def test_markdown_has_baselines_notes_and_no_ci_columns(runs):
    text, path = build_report(runs)
    assert path is None
    assert "0.960 ± 0.008" in text  # 3 seeds
    assert "paper: MedMNIST v2 ResNet-18 (28) |" in text and "0.944" in text
    assert "more than one code version" in text and "reuse=True" in text and "single run" in text
    assert "auc_lo" not in text
    assert "recipe=paper" in text  # the setting that differs between rows is shown


def test_html_is_self_contained(runs, tmp_path):
    text, path = build_report(runs, fmt="html", out=tmp_path / "r.html")
    assert path.read_text() == text
    assert text.count("data:image/png;base64,") >= 2  # the bars and accuracy vs cost
    assert "http://" not in text and "https://" not in text.replace("https://doi", "")  # nothing fetched
    assert "<table>" in text and "paper: MedMNIST v2" in text


def test_flat_record_folders_and_bad_input(tmp_path, capsys):
    flat = tmp_path / "records"
    flat.mkdir()
    _record(flat, "x_seed0", 0, 0.9, flat=True)
    _record(flat, "x_seed1", 1, 0.8, flat=True)
    (flat / "notes.json").write_text('{"not": "a record"}')
    assert len(load_records(flat)) == 2
    assert main(["report", str(flat)]) == 0 and "0.850 ± 0.050" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "medlib sweep sweeps/smoke.yaml" in capsys.readouterr().err


def test_mann_whitney_auc_and_the_winners_curse():
    from sklearn.metrics import roc_auc_score

    from medlib.report import auc_mann_whitney, best_of_k

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.normal(size=(4, 300)) + y
    s[0, :10] = 0.0  # ties
    assert np.allclose(auc_mann_whitney(y, s), [roc_auc_score(y, row) for row in s], atol=1e-12)
    table, aucs = best_of_k(114, 42, 0.9, ks=(1, 5, 20), repeats=300, seed=1)
    assert aucs.shape == (300, 20)
    assert abs(table["optimism"].iloc[0]) < 0.005  # one configuration: unbiased
    assert table["optimism"].is_monotonic_increasing and table["optimism"].iloc[-1] > 0.02  # best of 20: optimistic
    same, _ = best_of_k(114, 42, 0.9, ks=(1, 5, 20), repeats=300, seed=1)
    assert same.equals(table)


def test_default_source_prefers_runs_here(tmp_path, monkeypatch):
    from medlib import paths
    from medlib.report import default_source

    monkeypatch.setenv("MEDLIB_RUNS", str(tmp_path / "runs"))
    assert default_source() == paths.REPO_ROOT / "bench" / "results" / "runs"  # nothing ran here yet
    _record(tmp_path / "runs", "x", 0, 0.9, chapter="10_benchmark")
    assert default_source() == paths.REPO_ROOT / "bench" / "results" / "runs"  # a report is not a run to report
    _record(tmp_path / "runs", "y", 0, 0.9)
    assert default_source() == tmp_path / "runs"
    assert default_source(tmp_path / "elsewhere") == (tmp_path / "elsewhere").resolve()


def test_cost_falls_back_to_training_seconds_without_run_json(runs):
    from medlib.report import cost_column

    assert cost_column(summarise(runs_frame(load_records(runs)))["01_cnn"]) == "run_seconds_mean"
    for meta in runs.rglob("run.json"):  # notebooks run by hand or by nbval write no run.json
        meta.unlink()
    table = summarise(runs_frame(load_records(runs)))["01_cnn"]
    assert cost_column(table) == "train_seconds_mean" and table["train_seconds_mean"].notna().all()
    text, _ = build_report(runs, fmt="html", out=runs / "r.html")
    assert "train seconds" in text or text.count("data:image/png;base64,") >= 2


def test_pareto_front_and_cost_points(runs):
    from medlib.report import cost_points, pareto_front

    assert pareto_front([3, 1, 2, 4], [0.9, 0.7, 0.8, 0.85]).tolist() == [True, True, True, False]
    assert pareto_front([1, 1], [0.5, 0.5]).tolist() == [True, False]  # an equal score at equal cost adds nothing
    tables = summarise(runs_frame(load_records(runs)))
    pts = cost_points(tables, "auc")
    assert pts.attrs["cost"] == "run_seconds" and len(pts) == 3  # 3 configurations (reused run not averaged)
    best = pts.loc[pts["auc_mean"].idxmax()]
    assert best["front"]  # the best score is always on the front
    by_params = cost_points(tables, "auc", cost="model_params")
    assert by_params.attrs["cost"] == "model_params" and by_params["front"].sum() == 1  # equal sizes: one wins


def test_pareto_plot_labels_every_point_and_draws_the_front(runs):
    import matplotlib

    matplotlib.use("Agg")
    from medlib.report import cost_points
    from medlib.viz.benchmark import pareto_plot

    pts = cost_points(summarise(runs_frame(load_records(runs))), "auc", "train_seconds")
    fig = pareto_plot(pts, "auc", "train_seconds", highlight="01_cnn")
    ax = fig.axes[0]
    labels = [t for t in ax.texts]
    assert len(labels) == len(pts)  # one label per configuration
    assert sum(t.get_fontweight() == "bold" for t in labels) == int(pts["front"].sum())  # the front in bold
    assert ax.get_xscale() == "log" and ax.get_legend() is not None
    assert pareto_plot(pts.iloc[:0]) is None

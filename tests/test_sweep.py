"""`medlib sweep`: grids are checked before anything runs; runs are parallel, resumable, safe
against a kill and against a second sweep on the same folder; Dask gives the same results.

The runs use a chapter in miniature (tests/fixtures/sweep_course/90_tiny.ipynb: no torch,
about a second of work; most of a run's ~15 s is the kernel and imports)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medlib.sweep import GridError, expand, load_grid, run_id, run_state

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "tests" / "fixtures" / "sweep_course"


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setenv("MEDLIB_NOTEBOOKS", str(COURSE))
    return COURSE


def _grid(tmp_path, text: str) -> Path:
    p = tmp_path / "grid.yaml"
    p.write_text(text)
    return p


def _sweep(grid, out, *args, wait=True, **kw):
    cmd = [sys.executable, "-m", "medlib.cli", "sweep", str(grid), "--out", str(out), "--no-progress", *args]
    env = {**os.environ, "MEDLIB_NOTEBOOKS": str(COURSE)}
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _results(out: Path) -> dict[str, dict]:
    """The finished runs (run.json says ok), not the attempts a resumed sweep moved aside.

    results.json alone is not enough: a run killed between writing it and its run.json is
    unfinished, and a resumed sweep reruns it."""
    return {d.name: json.loads((d / "results.json").read_text()) for d in (out / "90_tiny").glob("*")
            if d.is_dir() and ".attempt" not in d.name and run_state(d) == "done"}


def test_grid_expands_to_the_product_plus_the_explicit_runs(tiny, tmp_path):
    specs = expand(load_grid(_grid(tmp_path, """
profile: smoke
seeds: [0, 1]
chapters:
  90_tiny: {x: [1.0, 2.0], dataset: toy}
runs:
  - {chapter: 90_tiny, x: 3.0, seed: 7}
  - {chapter: 90_tiny, x: 4.0}
  - {chapter: 90_tiny, x: 1.0, dataset: toy, seed: 0}   # a duplicate of a product run: once
""")))
    got = sorted((s.kwargs["x"], s.kwargs["seed"]) for s in specs)
    assert got == [(1.0, 0), (1.0, 1), (2.0, 0), (2.0, 1), (3.0, 7), (4.0, 0), (4.0, 1)]
    assert {s.profile for s in specs} == {"smoke"}
    ids = {run_id(s, "abc") for s in specs}
    assert len(ids) == len(specs)  # one folder per run
    assert run_id(specs[0], "abc") == run_id(specs[0], "abc") != run_id(specs[0], "other code")


@pytest.mark.parametrize("text, expected", [
    ("chapters: {99_nope: {}}", ["unknown chapter '99_nope'", "valid chapters: 90_tiny"]),
    ("chapters: {90_tiny: {wobble: [1]}}", ["90_tiny has no parameter 'wobble'", "valid parameters: profile, seed"]),
    ("chapters: {90_tiny: {x: ['a lot']}}", ["x must be a float"]),
    ("profile: fast\nchapters: {90_tiny: {}}", ["unknown profile 'fast'"]),
    ("seeds: [-1]\nchapters: {90_tiny: {}}", ["seeds must be non-negative integers"]),
    ("chapter: {90_tiny: {}}", ["unknown key 'chapter'"]),
])
def test_a_bad_grid_fails_before_anything_runs_and_says_what_is_valid(tiny, tmp_path, text, expected):
    with pytest.raises(GridError) as e:
        expand(load_grid(_grid(tmp_path, text)))
    for part in expected:
        assert part in str(e.value)


def test_the_command_lists_every_problem_and_creates_nothing(tiny, tmp_path):
    grid = _grid(tmp_path, "chapters: {90_tiny: {wobble: [1]}, 99_nope: {}}")
    r = _sweep(grid, tmp_path / "out")
    assert r.returncode == 2
    assert "no parameter 'wobble'" in r.stderr and "unknown chapter '99_nope'" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was created


def test_real_chapter_values_are_checked(tmp_path):
    grid = _grid(tmp_path, "chapters: {01_cnn: {dataset: [nosuchmnist]}}")
    with pytest.raises(GridError, match="unknown dataset 'nosuchmnist'.*pneumoniamnist"):
        expand(load_grid(grid))


@pytest.mark.parametrize("name", ["smoke", "standard", "paper"])
def test_shipped_grids_are_valid_here(name, data_root, monkeypatch):
    monkeypatch.setenv("MEDLIB_DATA", str(data_root))
    specs = expand(load_grid(ROOT / "sweeps" / f"{name}.yaml"))
    chapters = {s.chapter for s in specs}
    assert {"01_cnn", "02_rnn", "05_unet", "07_vit"} <= chapters
    assert {s.profile for s in specs} == {name}
    if name == "smoke":  # every chapter that benchmarks something, two seeds
        assert chapters == {"00_data_tour", "01_cnn", "02_rnn", "03_autoencoders", "04_gans", "05_unet", "06_transfer_learning", "07_vit", "08_hybrids", "09_xai", "11_trust"}
        assert all(sorted(s.kwargs["seed"] for s in specs if s.chapter == c) == [0, 1] for c in chapters - {"00_data_tour"})


MINI = """
name: mini
profile: smoke
chapters:
  90_tiny: {x: [1.0, 2.0], fail: [false]}
runs:
  - {chapter: 90_tiny, x: 9.0, fail: true}
"""


@pytest.fixture(scope="module")
def mini_sweep(tmp_path_factory):
    """The MINI grid swept here with 2 workers: (grid, runs folder, completed process)."""
    tmp = tmp_path_factory.mktemp("mini")
    grid = _grid(tmp, MINI)
    out = tmp / "runs"
    return grid, out, _sweep(grid, out, "--workers", "2")


def test_sweep_runs_in_parallel_records_a_failure_and_resumes(mini_sweep):
    grid, out, r = mini_sweep
    assert r.returncode == 1, r.stdout + r.stderr  # one run failed: the exit code says so
    assert "2 ran, 1 failed" in r.stdout and "this run was asked to fail" in r.stderr
    done = _results(out)
    assert sorted(v["params"]["x"] for v in done.values()) == [1.0, 2.0]  # the failure did not stop the others
    failed = [d for d in (out / "90_tiny").iterdir() if d.is_dir() and d.name not in done]
    assert len(failed) == 1
    assert json.loads((failed[0] / "run.json").read_text())["status"] == "failed"
    assert (failed[0] / "90_tiny.ipynb").exists() and "asked to fail" in (failed[0] / "sweep.log").read_text()
    manifest = json.loads(next((out / "_sweeps").glob("mini-*.json")).read_text())
    assert manifest["counts"] == {"ok": 2, "failed": 1, "done": 0} and manifest["status"] == "finished"

    dry = _sweep(grid, out, "--dry-run")  # finished runs are found; the failed one runs again
    assert dry.returncode == 0 and "3 runs, 1 to run, 2 already done" in dry.stdout


def test_sigterm_to_the_sweep_alone_stops_its_runs_at_once(tiny, tmp_path):
    grid = _grid(tmp_path, "profile: smoke\nchapters:\n  90_tiny: {sleep: [60.0]}\n")
    out = tmp_path / "runs"
    p = _sweep(grid, out, wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("90_tiny/*/started.txt")):
        time.sleep(0.2)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)  # the sweep's process only: it must stop its runs, not wait 60 s for them
    p.wait(timeout=40)
    assert p.returncode == 143 and time.time() - t0 < 30
    (run,) = [d for d in (out / "90_tiny").iterdir() if d.is_dir()]
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert not (run / "results.json").exists()
    assert json.loads(next((out / "_sweeps").glob("*.json")).read_text())["status"] == "interrupted"


def test_dask_local_cluster_gives_the_same_results(mini_sweep, tmp_path):
    pytest.importorskip("distributed")
    grid, here, _ = mini_sweep
    dask = tmp_path / "dask"
    r = _sweep(grid, dask, "--workers", "2", "--scheduler", "local")
    assert r.returncode == 1 and "2 ran, 1 failed" in r.stdout, r.stdout + r.stderr

    def table(out):
        return sorted((v["seed"], v["params"]["x"], v["metrics"]["test"]["auc"]) for v in _results(out).values())

    assert table(here) == table(dask) and len(table(here)) == 2
    assert sorted(_results(here)) == sorted(_results(dask))  # the same run ids


def test_a_killed_sweep_resumes_and_two_sweeps_share_a_folder(tiny, tmp_path):
    grid = _grid(tmp_path, "profile: smoke\nchapters:\n  90_tiny: {x: [1.0, 2.0, 3.0], sleep: [2.0]}\n")
    out = tmp_path / "runs"
    p = _sweep(grid, out, "--workers", "1", wait=False, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not _results(out):
        time.sleep(0.2)
    time.sleep(3)  # the second run is under way now
    os.killpg(p.pid, signal.SIGTERM)
    p.wait(timeout=60)
    assert p.returncode != 0
    first = _results(out)
    assert 1 <= len(first) < 3, "the kill should land half-way"
    assert not list(out.rglob("*.tmp")), "no half-written file may remain"
    stamps = {k: (out / "90_tiny" / k / "started.txt").read_text() for k in first}

    a = _sweep(grid, out, "--workers", "1", wait=False)  # two sweeps resume the same folder at once
    b = _sweep(grid, out, "--workers", "1", wait=False)
    for s in (a, b):
        s.wait(timeout=300)
        assert s.returncode == 0, s.stdout.read()
    done = _results(out)
    assert sorted(v["params"]["x"] for v in done.values()) == [1.0, 2.0, 3.0]
    assert {k: (out / "90_tiny" / k / "started.txt").read_text() for k in first} == stamps  # not redone
    attempts = [d for d in (out / "90_tiny").iterdir() if ".attempt" in d.name]
    assert len(attempts) <= 1  # only the run the kill interrupted was moved aside (kept, not deleted)
    assert all(d.name.split(".attempt")[0] not in first for d in attempts)  # never a finished run
    # each run ran to the end once, not once per sweep: one folder per run id; the moved-aside
    # attempt may or may not hold started.txt (the kill can land before the run writes it)
    runs = [d for d in (out / "90_tiny").iterdir() if d.is_dir() and d.name.startswith("90_tiny-") and ".attempt" not in d.name]
    assert len(runs) == 3 and all((d / "started.txt").exists() for d in runs)

import json
import subprocess
import sys

import pytest

from medlib import cli

CHAPTER = "00_data_tour"


def test_parse_value():
    assert cli.parse_value("3") == 3 and cli.parse_value("0.5") == 0.5
    assert cli.parse_value("None") is None and cli.parse_value("breastmnist") == "breastmnist"


def test_chapters_and_parameters():
    chs = cli.chapters()
    assert CHAPTER in chs
    params = cli.notebook_parameters(chs[CHAPTER])
    assert {"profile", "dataset", "seed", "device"} <= set(params)
    assert cli.find_chapter("00")[0] == CHAPTER and cli.find_chapter("data_tour")[0] == CHAPTER
    with pytest.raises(SystemExit, match="valid chapters"):
        cli.find_chapter("99")


def test_unknown_parameter_lists_valid_ones(capsys, tmp_path):
    assert cli.main(["run", CHAPTER, "-p", "nosuchparam", "1", "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no parameter 'nosuchparam'" in err and "dataset" in err and "seed" in err
    assert not (tmp_path / CHAPTER).exists()


def test_run_name_cannot_escape(capsys, tmp_path):
    assert cli.main(["run", CHAPTER, "--name", "../../etc", "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid run name" in err  # one line, no traceback
    assert not (tmp_path / CHAPTER).exists()


def test_skip_done_compares_the_code_too(tmp_path, monkeypatch):
    """A finished run counts as done only for the same chapter, parameters and code."""
    import json

    params = {"dataset": "breastmnist"}
    root = tmp_path / "runs"
    done = root / CHAPTER / "r1"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    (done / "run.json").write_text(json.dumps({"status": "ok", "key": cli.run_key(CHAPTER, params, "abc")}))
    assert cli._finished_run(CHAPTER, cli.run_key(CHAPTER, params, "abc"), root) == done
    assert cli._finished_run(CHAPTER, cli.run_key(CHAPTER, params, "abd"), root) is None  # other code
    assert cli._finished_run(CHAPTER, cli.run_key(CHAPTER, {"dataset": "x"}, "abc"), root) is None


def test_list_prints_parameters(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert CHAPTER in out and "dataset" in out


def test_data_command(capsys, data_root):
    assert cli.main(["data", "--data", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "pneumoniamnist" in out and "verified" in out and "drive" in out


def test_unknown_dataset_fails_with_valid_choices_and_keeps_the_notebook(tmp_path, data_root):
    """End to end through papermill: a real kernel runs the notebook and stops at setup()."""
    proc = subprocess.run(
        [sys.executable, "-m", "medlib.cli", "run", CHAPTER, "-p", "dataset", "nosuch",
         "--profile", "smoke", "--runs", str(tmp_path), "--quiet"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "unknown dataset 'nosuch'" in proc.stderr and "pneumoniamnist" in proc.stderr
    (run_dir,) = (tmp_path / CHAPTER).iterdir()
    assert (run_dir / f"{CHAPTER}.ipynb").exists(), "the partly executed notebook was not kept"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert str(run_dir / f"{CHAPTER}.ipynb") in proc.stderr

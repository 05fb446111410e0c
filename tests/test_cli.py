import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_a_failing_notebook_is_kept_and_reported(tmp_path, data_root, monkeypatch):
    """End to end through papermill: a real kernel runs the notebook and stops where the data
    is missing (a valid name whose file is not present), keeping the partial notebook."""
    empty = tmp_path / "nodata"
    (empty / "medmnist").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-m", "medlib.cli", "run", CHAPTER, "-p", "dataset", "breastmnist",
         "--profile", "smoke", "--runs", str(tmp_path / "runs"), "--quiet"],
        capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "MEDLIB_DATA": str(empty)})
    tmp_path = tmp_path / "runs"
    assert proc.returncode != 0
    assert "MedMNIST file not found" in proc.stderr and "breastmnist.npz" in proc.stderr
    assert "without encryption" not in proc.stderr
    (run_dir,) = (tmp_path / CHAPTER).iterdir()
    assert (run_dir / f"{CHAPTER}.ipynb").exists(), "the partly executed notebook was not kept"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert str(run_dir / f"{CHAPTER}.ipynb") in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["-p", "model", "vgg"], "unknown model 'vgg'; valid choices: 'unet'"),
    (["-p", "seed", "-1"], "seed must be >= 0"),
    (["-p", "epochs", "'3'"], "epochs must be an integer"),
    (["-p", "ablations", "1"], "ablations must be a bool like its default True, got 1"),
    (["-p", "dataset", "nosuch"], "unknown dataset 'nosuch'"),
    (["-p", "device", "cuda" if not __import__("torch").cuda.is_available() else "tpu"], "device"),
    (["-p", "mask_threshold", "127"], "mask_threshold applies to folder datasets only"),
])
def test_bad_values_are_refused_before_a_kernel_starts(args, message, capsys, tmp_path):
    import time

    t0 = time.perf_counter()
    assert cli.main(["run", "05_unet", *args, "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: 05_unet: ") and err.count("\n") == 1
    assert not (tmp_path / "05_unet").exists() and time.perf_counter() - t0 < 15  # no kernel was started


def _run_tiny_notebook(tmp_path, manager: str) -> str:
    """Execute a one-cell notebook in a fresh process the way `medlib run` does; its stderr."""
    import subprocess
    import sys

    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                          "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print('ran', x)")]
    src, out = tmp_path / "tiny.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    code = (f"from pathlib import Path\nfrom medlib import cli\nimport papermill as pm\n"
            f"if {manager == 'tcp'}:\n"
            f"    from jupyter_client import AsyncKernelManager\n"
            f"    cli.kernel_manager_class = lambda: AsyncKernelManager\n"
            f"cli.execute(Path({str(src)!r}), Path({str(out)!r}), {{'x': 2}}, cwd=Path({str(tmp_path)!r}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-500:]
    assert "ran 2" in r.stdout + r.stderr + out.read_text()
    return r.stderr


def test_medlib_run_kernels_print_no_transport_warning(tmp_path):
    assert "without encryption" not in _run_tiny_notebook(tmp_path, "ipc")


def test_the_transport_warning_check_can_fail(tmp_path):
    assert "without encryption" in _run_tiny_notebook(tmp_path, "tcp")  # what medlib run printed before


def test_kernel_sockets_live_in_jupyters_runtime_folder_not_beside_the_notebooks():
    """A killed run leaves its IPC sockets behind: they must not clutter notebooks/."""
    if os.name != "posix":
        pytest.skip("IPC sockets are POSIX only")
    from jupyter_core.paths import jupyter_runtime_dir

    ip = cli.kernel_manager_class()().ip
    assert Path(ip).parent == Path(jupyter_runtime_dir()) and "medlib-" in Path(ip).name

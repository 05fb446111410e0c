"""House rules: notebooks without outputs and with the contract's shape; install files in sync."""

import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))


def _committed_without_outputs(path):
    """The notebook and its code cells; fails if any cell was committed with outputs."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:
        assert not c.get("outputs") and c.get("execution_count") is None, f"{path.name} has outputs"
    return nb, code


def test_there_are_notebooks():
    assert NOTEBOOKS, "no chapter notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_contract(path):
    nb, code = _committed_without_outputs(path)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged parameters"
    for line in code[0].source.splitlines():  # flat literals only
        assert re.match(r"^\s*(#.*)?$|^\w+\s*=\s*[^()\[\]{}]*(#.*)?$", line), f"not a flat literal: {line}"
    assert "medlib.setup(" in code[1].source, "the second code cell must call medlib.setup"
    src = "\n".join(c.source for c in code)
    assert "!pip" not in src and "%pip" not in src
    assert not re.search(r"""\.to\(\s*["']cuda|\.cuda\(\)""", src), "hard-coded device"
    assert "run.record(" in code[-1].source, "the last code cell must record results"
    assert "/work/" not in src and "/home/" not in src, "absolute path in a notebook"


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = env["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["-e .[dev]"], "environment.yml must install the package itself with [dev]"
    py = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    minimum = project["requires-python"].lstrip(">=")
    assert tuple(map(int, py.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))
    assert "dev" in project["optional-dependencies"]
    assert "pip" in deps


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercises_have_hints_solutions_and_recall(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    exercises = text.split("## Exercises", 1)[1].split("\n## ", 1)[0]
    n = len(re.findall(r"^\d+\. \*\*", exercises, flags=re.M))
    assert n >= 3 and exercises.count("*Hint:*") == n, f"{path.name}: {n} exercises, each needs a *Hint:*"
    assert (ROOT / "notebooks" / "solutions" / path.name).exists(), f"no worked solutions for {path.name}"
    recall = text.split("## Recall", 1)[1].split("\n## ", 1)[0]
    assert 8 <= recall.count("<details>") <= 10, f"{path.name}: 8-10 recall questions with answers"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebooks_follow_the_house_rules(path):
    nb, code = _committed_without_outputs(path)
    assert "parameters" in code[0].metadata.get("tags", []) and "medlib.setup(" in code[1].source
    src = "\n".join(c.source for c in code)
    assert "!pip" not in src and "%pip" not in src and "/work/" not in src
    assert not re.search(r"""\.to\(\s*["']cuda|\.cuda\(\)""", src), "hard-coded device"
    assert "run.record(" in src

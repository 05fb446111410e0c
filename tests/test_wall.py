"""The wall around the test set: sealed at run time, and touched only by the final
evaluation in medlib (checked on the source) and at the end of every notebook."""

import ast
import re
from pathlib import Path

import nbformat
import pytest
import torch

from medlib.config import setup
from medlib.data.heldout import HeldOut, TestSetSealed
from medlib.data.synthetic import synthetic
from medlib.evaluation import evaluate
from medlib.recipes.classification import build_classifier, train_classifier

ROOT = Path(__file__).resolve().parents[1]
MEDLIB = ROOT / "medlib"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted(
    (ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))

# Modules allowed to name a test split: the loaders that build it, the seal itself, the run
# that opens it, and the final evaluation.
BUILDERS = {"data/medmnist.py", "data/segmentation.py", "data/synthetic.py", "data/heldout.py", "config.py"}
FINAL = {"evaluation.py": {"evaluate_classifier", "evaluate_segmenter"}}


def test_sealed_split_says_what_to_do():
    d = synthetic("binary-class", n=16)
    assert isinstance(d.test, HeldOut) and len(d.test) == 16
    assert d.test.class_counts().sum() == 16 and d.test.info is d.info  # facts about the data
    for attr in ("images", "labels", "targets", "subset"):
        with pytest.raises(TestSetSealed, match="sealed.*validation split.*run.open_test"):
            getattr(d.test, attr)
    with pytest.raises(TestSetSealed):
        d.test.images = None


def test_nothing_trains_or_scores_on_a_sealed_split():
    d = synthetic("binary-class", n=16)
    model = build_classifier("simplecnn", d.info, 28, seed=0)
    with pytest.raises(TestSetSealed):
        evaluate(model, d.test)
    with pytest.raises(TestSetSealed):
        train_classifier(model, d.test, d.val, epochs=1, progress=False)
    with pytest.raises(TestSetSealed):
        train_classifier(model, d.train, d.test, epochs=1, progress=False)


def test_a_run_opens_test_once_at_the_end_and_records_it():
    d = synthetic("binary-class", n=16)
    run = setup("99_test", profile="smoke", verbose=False)
    build_classifier("simplecnn", d.info, 28, run=run)
    test = run.open_test(d)
    assert len(test.images) == 16 and run.test_opened[0]["purpose"] == "final evaluation"
    with pytest.raises(TestSetSealed, match="build and train every model before the final evaluation"):
        build_classifier("simplecnn", d.info, 28, run=run)
    run.open_test(d)  # reopening (a re-run cell) is allowed, and counted in results.json
    assert len(run.test_opened) == 2
    with pytest.raises(ValueError, match="purpose"):
        d.test.open("")


def _test_touches(tree: ast.AST):
    """(line, what, enclosing function) of every `.test` attribute, `open_test(` call and
    `split("test")` in a module."""
    found = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            f = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Attribute) and child.attr in ("test", "open_test"):
                found.append((child.lineno, child.attr, f))
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr == "split"
                    and any(isinstance(a, ast.Constant) and a.value == "test" for a in child.args)):
                found.append((child.lineno, 'split("test")', f))
            visit(child, f)

    visit(tree, None)
    return found


def test_medlib_touches_test_only_in_the_final_evaluation():
    offenders = []
    for path in sorted(MEDLIB.rglob("*.py")):
        rel = path.relative_to(MEDLIB).as_posix()
        if rel in BUILDERS:
            continue
        for line, what, func in _test_touches(ast.parse(path.read_text())):
            if rel in FINAL and func in FINAL[rel]:
                continue
            offenders.append(f"medlib/{rel}:{line} {what} in {func}()")
    assert not offenders, "the test split is used outside the final evaluation:\n" + "\n".join(offenders)


def test_the_static_check_can_fail():
    tree = ast.parse("def choose(data):\n    return data.test.images\n\ndef f(d):\n    return d.split('test')\n")
    assert [(w, f) for _, w, f in _test_touches(tree)] == [("test", "choose"), ('split("test")', "f")]


TRAINING = re.compile(r"\b(train_classifier|train_segmenter|short_run|fit|Trainer|build_classifier|build_segmenter)\(|"
                      r"\brun\.build\(")
# Reading the sealed split's data (its size, class counts and repr are facts, not results),
# opening it, or the final evaluation. Any other use fails at run time: the split is sealed.
TOUCHES_TEST = re.compile(r"\.test\.(?!class_counts\b|name\b|info\b)\w+|\.test\[|open_test\(|"
                          r"evaluate_classifier\(|evaluate_segmenter\(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.stem)
def test_notebooks_touch_test_only_after_the_last_training_cell(path):
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    train_cells = [i for i, src in enumerate(code) if TRAINING.search(src)]
    test_cells = [i for i, src in enumerate(code) if TOUCHES_TEST.search(src)]
    if train_cells and test_cells:
        first_test, last_train = min(test_cells), max(train_cells)
        assert first_test > last_train, (
            f"{path.name}: code cell {first_test + 1} uses the test split, but cell {last_train + 1} still "
            f"trains or builds a model:\n{code[first_test][:300]}")


def test_the_notebook_check_can_fail():
    assert TOUCHES_TEST.search("probs = predict(model, data.test.open('x'))")
    assert TOUCHES_TEST.search("x = data.test.images[:4]") and TOUCHES_TEST.search("run.open_test(data)")
    assert TOUCHES_TEST.search("report = evaluate_classifier(run, net, data)")
    assert not TOUCHES_TEST.search("len(data.test), data.test.class_counts(), print(data.test)")
    assert TRAINING.search("hist = train_classifier(net, train, val)") and TRAINING.search("net = run.build(f)")


def test_synthetic_and_real_loaders_seal_their_test_split(data_root):
    from medlib.data.medmnist import load

    d = load("breastmnist", root=data_root)
    assert isinstance(d.test, HeldOut) and isinstance(d.split("test"), HeldOut) and len(d.test) == 156
    assert torch.is_tensor(d.val.images)

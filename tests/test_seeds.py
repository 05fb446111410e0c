"""Seeds reach every model: one call builds a chapter's model under the run's seed (checksum
recorded), a different seed changes the initial weights, the same seed reproduces them;
the deterministic option switches torch's deterministic algorithms on and off."""

import re
from pathlib import Path

import nbformat
import pytest
import torch

from medlib import env
from medlib.config import setup
from medlib.data.segmentation import SegDataset, SegSplit
from medlib.data.synthetic import synthetic
from medlib.recipes.classification import build_classifier
from medlib.recipes.segmentation import build_segmenter

ROOT = Path(__file__).resolve().parents[1]


def _run(seed, **kw):
    return setup("99_test", profile="smoke", seed=seed, verbose=False, **kw)


def _seg_data():
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    split = SegSplit(images, torch.zeros(4, 32, 32, dtype=torch.uint8), list("abcd"))
    return SegDataset("toy", split, split, None, num_classes=2, mean=[0.5] * 3, std=[0.2] * 3)


def _build_01(run):
    info = synthetic("binary-class", n=4).info
    return build_classifier("compactresnet", info, 28, run=run)


def _build_05(run):
    return build_segmenter(run, "unet", _seg_data(), width=8, depth=2)


@pytest.mark.parametrize("chapter, build", [("01_cnn", _build_01), ("05_unet", _build_05)])
def test_seed_reaches_the_chapter_model(chapter, build):
    a, b, c = _run(0), _run(0), _run(1)
    checks = [env.weights_checksum(build(r)) for r in (a, b, c)]
    assert checks[0] == checks[1], "seed 0 twice must give the same initial weights"
    assert checks[0] != checks[2], "seeds 0 and 1 must give different initial weights"
    assert a.init["model"]["checksum"] == checks[0] and c.init["model"]["seed"] != a.init["model"]["seed"]


def test_global_rng_state_before_build_does_not_matter():
    r1, r2 = _run(3), _run(3)
    torch.rand(1000)  # a teaching cell that draws random numbers before the model is built
    assert env.weights_checksum(_build_01(r1)) == env.weights_checksum(_build_01(r2))


def test_two_models_of_one_run_differ_by_label():
    run = _run(0)
    a = build_classifier("simplecnn", synthetic("binary-class", n=4).info, run=run, label="with BN")
    b = build_classifier("simplecnn", synthetic("binary-class", n=4).info, run=run, label="without BN")
    assert env.weights_checksum(a) != env.weights_checksum(b) and set(run.init) == {"with BN", "without BN"}


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("**/[0-9][0-9]_*.ipynb")),
                         ids=lambda p: p.parent.name + "/" + p.stem)
def test_notebooks_build_models_through_the_run(path):
    """No notebook seeds by hand: `torch.manual_seed` after setup() is how the seed got lost."""
    src = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert not re.search(r"torch\.manual_seed\(\s*(seed|run\.seed|0)\b", src), f"{path.name} seeds by hand"


def test_deterministic_option(monkeypatch):
    try:
        _run(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        _run(0, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
        monkeypatch.setenv("MEDLIB_DETERMINISTIC", "1")
        assert _run(0).deterministic and torch.are_deterministic_algorithms_enabled()
    finally:
        env.set_determinism(False)


def test_two_models_under_one_label_are_both_recorded():
    run = _run(0)
    info = synthetic("binary-class", n=4).info
    build_classifier("simplecnn", info, run=run, label="x")
    build_classifier("simplecnn", info, run=run, label="x")  # same label, same seed: same weights, one entry
    run.build(torch.nn.Linear, 3, 2, label="x")  # same label, another model: kept as "x #2"
    assert list(run.init) == ["x", "x #2"] and run.init["x"] != run.init["x #2"]


def test_build_seeded_derives_the_seed_from_the_label_and_needs_one():
    import pytest
    import torch

    from medlib.recipes.classification import build_seeded

    def make():
        return torch.nn.Linear(4, 2)

    a, b = build_seeded(make, seed=0, label="x"), build_seeded(make, seed=0, label="x")
    c = build_seeded(make, seed=0, label="y")
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    with pytest.raises(ValueError, match="needs a run or a seed"):
        build_seeded(make, label="x")

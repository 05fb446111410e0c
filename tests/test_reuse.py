"""The instructor's path: a second run with reuse=True loads the first run's model (checked by
checksum) instead of training, and scores the same; without a match it trains and says so."""

import pytest
import torch

from medlib import env, reuse
from medlib.config import setup
from medlib.data.synthetic import synthetic
from medlib.evaluation import evaluate
from medlib.recipes.classification import build_classifier, train_classifier


def _chapter(reuse_flag: bool, seed: int = 0, capsys=None):
    d = synthetic("binary-class", n=32)
    run = setup("99_reuse", profile="smoke", dataset="synthetic", model="simplecnn", seed=seed,
                reuse=reuse_flag, verbose=False)
    net = build_classifier("simplecnn", d.info, 28, run=run)
    calls = []

    def train():
        calls.append(1)
        return train_classifier(net, d.train, d.val, epochs=2, batch_size=8, progress=False, seed=seed)

    hist = reuse.train_or_reuse(run, net, train)
    return run, net, hist, calls, d


def test_reuse_loads_the_earlier_model_and_reproduces_its_metrics(capsys):
    run1, net1, h1, calls1, d = _chapter(False)
    assert calls1 == [1] and (run1.dir / "model.pt").exists() and run1.reused is None
    run2, net2, h2, calls2, _ = _chapter(True)
    out = capsys.readouterr().out
    assert calls2 == [] and "training skipped" in out and run1.dir.name in out
    assert run2.reused["from"] == str(run1.dir)
    assert env.weights_checksum(net2) == env.weights_checksum(net1)
    assert h2.epochs == h1.epochs and h2.best_epoch == h1.best_epoch
    assert evaluate(net2, d.val) == evaluate(net1, d.val)


def test_reuse_without_a_match_trains_and_says_so(capsys):
    _chapter(False, seed=0)
    run, _, _, calls, _ = _chapter(True, seed=1)  # other parameters: no match
    assert calls == [1] and "no earlier run" in capsys.readouterr().out and run.reused is None


def test_a_changed_checkpoint_is_refused():
    run1, *_ = _chapter(False)
    state = torch.load(run1.dir / "model.pt", weights_only=True)
    key = next(iter(state["state_dict"]))
    state["state_dict"][key] = state["state_dict"][key] + 1
    torch.save(state, run1.dir / "model.pt")
    with pytest.raises(RuntimeError, match="does not match the checksum"):
        _chapter(True)

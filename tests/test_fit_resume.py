"""An interrupted fit() resumed from its checkpoint ends exactly where an unbroken one does."""

import torch
import torch.nn as nn

from medlib.data import augment
from medlib.data.synthetic import synthetic
from medlib.train import evaluate, fit


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(64, 4))


def test_resume_after_interruption_is_exact(tmp_path):
    d = synthetic("multi-class", n=64)
    kw = dict(epochs=4, batch_size=16, progress=False, augment=augment.standard_2d())
    unbroken = _model()
    h = fit(unbroken, d.train, d.val, **kw)

    calls = []

    def interrupt_in_epoch_3(model):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate(model, d.val)

    ckpt = tmp_path / "ckpt.pt"
    try:
        fit(_model(), d.train, d.val, checkpoint=ckpt, evaluate_fn=interrupt_in_epoch_3, **kw)
    except KeyboardInterrupt:
        pass
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1  # epochs 1-2 were saved
    resumed = _model()
    h2 = fit(resumed, d.train, d.val, checkpoint=ckpt, resume=True, **kw)
    assert h2.column("train_loss") == h.column("train_loss") and h2.best_epoch == h.best_epoch
    for a, b in zip(unbroken.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)

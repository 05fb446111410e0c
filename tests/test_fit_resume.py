"""An interrupted run resumed from its checkpoint ends exactly where an unbroken one does,
for both batch sources of the suite (classification and segmentation)."""

import pytest
import torch
import torch.nn as nn

from medlib.data import augment
from medlib.data.batches import SegBatches, TensorLoader
from medlib.data.segmentation import SegDataset, SegSplit
from medlib.data.synthetic import synthetic
from medlib.evaluation import evaluate
from medlib.losses import bce_dice
from medlib.models.unet import UNet
from medlib.train import fit


def _interrupted_then_resumed(make_model, make_batches, evaluate_fn, tmp_path, **kw):
    """Train 4 epochs straight; then 2 epochs + a crash in epoch 3 + a resume to 4."""
    unbroken = make_model()
    h = fit(unbroken, make_batches(), epochs=4, evaluate=lambda: evaluate_fn(unbroken), progress=False, **kw)
    ckpt, calls = tmp_path / "ckpt.pt", []
    crashed = make_model()

    def crash_in_epoch_3():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate_fn(crashed)

    with pytest.raises(KeyboardInterrupt):
        fit(crashed, make_batches(), epochs=4, evaluate=crash_in_epoch_3, checkpoint=ckpt, progress=False, **kw)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1  # epochs 1-2 were saved
    torch.manual_seed(999)  # disturb the global RNG: the checkpoint must restore it
    resumed = make_model()
    h2 = fit(resumed, make_batches(), epochs=4, evaluate=lambda: evaluate_fn(resumed), checkpoint=ckpt,
             resume=True, progress=False, **kw)
    return unbroken, resumed, h, h2


def test_resume_is_exact_with_tensorloader(tmp_path):
    d = synthetic("multi-class", n=64)

    def make_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.3), nn.AdaptiveAvgPool2d(4),
                             nn.Flatten(), nn.Linear(64, 4))

    unbroken, resumed, h, h2 = _interrupted_then_resumed(
        make_model, lambda: TensorLoader(d.train, 16, shuffle=True, augment=augment.standard_2d(), seed=0),
        lambda m: evaluate(m, d.val), tmp_path, loss_fn=nn.functional.cross_entropy, select_by="auc")
    assert h2.column("train_loss") == h.column("train_loss") and h2.best_epoch == h.best_epoch
    for a, b in zip(unbroken.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_is_exact_with_segbatches(tmp_path):
    """Random patches, flips and intensity jitter drawn from SegBatches' own generator: before
    SegBatches had a state_dict, a resumed run diverged at its first resumed epoch."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (6, 1, 48, 48), dtype=torch.uint8, generator=g)
    masks = (images[:, 0] > 150).to(torch.uint8)
    split = SegSplit(images, masks, [str(i) for i in range(6)])
    data = SegDataset("toy", split, split, None, num_classes=2, mean=[0.5], std=[0.25])

    def make_model():
        torch.manual_seed(0)
        return UNet(1, 1, width=4, depth=2)

    def make_batches():
        return SegBatches(data, split, 4, patch_size=16, batches_per_epoch=3, seed=1,
                          aug={"flips": True, "rot90": True, "intensity": 0.1})

    unbroken, resumed, h, h2 = _interrupted_then_resumed(
        make_model, make_batches, lambda m: {}, tmp_path, loss_fn=bce_dice, lr=1e-2)
    assert h2.column("train_loss") == h.column("train_loss")
    for a, b in zip(unbroken.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_a_batch_source_without_state_cannot_silently_resume_differently(tmp_path):
    d = synthetic("binary-class", n=32)
    ckpt = tmp_path / "c.pt"
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2))
    fit(model, TensorLoader(d.train, 8, shuffle=True), epochs=1, loss_fn=nn.functional.cross_entropy,
        checkpoint=ckpt, progress=False)
    batches = list(TensorLoader(d.train, 8, shuffle=True))  # a list has no load_state_dict
    with pytest.raises(Exception, match="no load_state_dict"):
        fit(model, batches, epochs=1, loss_fn=nn.functional.cross_entropy, checkpoint=ckpt, resume=True,
            progress=False)

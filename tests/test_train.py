"""The trainer: learns, is deterministic, stops on NaN/OOM with the step and advice, runs
custom steps (two optimizers), its schedule equals torch's; chapter 01's recipes."""

import pytest
import torch
import torch.nn as nn

from medlib.data.synthetic import synthetic
from medlib.evaluation import evaluate
from medlib.recipes.classification import (
    balanced_class_weights,
    build_classifier,
    recipe,
    standard_epochs,
    task_loss,
    train_classifier,
)
from medlib.train import (
    SupervisedStep,
    Trainer,
    TrainingError,
    TrainStep,
    fit,
    lr_factor,
    make_schedule,
)


def _model(seed=0, channels=1, classes=2):
    """A small CNN that keeps position (the synthetic classes differ by where a patch is)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(4), nn.Flatten(), nn.Linear(4 * 7 * 7, classes))


def test_fit_overfits_a_tiny_batch():
    d = synthetic("binary-class", n=16)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, 2))
    h = train_classifier(model, d.train, d.train, epochs=40, batch_size=16, lr=1e-2, progress=False,
                         select_by="loss", mode="min")
    assert h.column("train_loss")[-1] < 0.2 * h.column("train_loss")[0]
    m = evaluate(model, d.train)
    assert m["acc"] == 1.0 and m["auc"] == 1.0


def test_same_seed_same_result_on_cpu():
    d = synthetic("multi-class", n=48)
    runs = []
    kw = {k: v for k, v in recipe("standard", d.train).items() if k not in ("epochs", "batch_size")}
    for _ in range(2):
        model = build_classifier("simplecnn", d.info, 28, seed=3)
        h = train_classifier(model, d.train, d.val, epochs=3, batch_size=16, progress=False, seed=3, **kw)
        runs.append((h.column("train_loss"), evaluate(model, d.val)["auc"]))
    assert runs[0] == runs[1]
    other = build_classifier("simplecnn", d.info, 28, seed=4)
    h = train_classifier(other, d.train, d.val, epochs=3, batch_size=16, progress=False, seed=4, **kw)
    assert h.column("train_loss") != runs[0][0]  # the seed matters, so the check can fail


def test_nan_loss_raises_with_the_step():
    d = synthetic("binary-class", n=32)
    calls = {"n": 0}

    def loss_fn(logits, y):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(logits, y)
        return loss * float("nan") if calls["n"] == 3 else loss

    from medlib.data.batches import TensorLoader

    with pytest.raises(TrainingError, match=r"epoch 1, step 3 .*lower learning rate"):
        fit(_model(), TensorLoader(d.train, 8), epochs=2, loss_fn=loss_fn, progress=False)


def test_out_of_memory_in_backward_is_caught_with_advice():
    class OOMInBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    model = nn.Linear(4, 2)
    batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
    loss_fn = lambda z, y: nn.functional.cross_entropy(OOMInBackward.apply(z), y)  # noqa: E731
    with pytest.raises(TrainingError, match=r"out of memory at epoch 1, step 1 .*batch of 8.*smaller batch_size"):
        fit(model, batches, epochs=1, loss_fn=loss_fn, progress=False)


def test_unknown_optimizer_and_schedule_list_choices():
    with pytest.raises(ValueError, match="valid choices: adamw, adam, sgd"):
        SupervisedStep(_model(), nn.functional.cross_entropy, optimizer="lamb")
    with pytest.raises(ValueError, match="valid choices: cosine, multistep, constant"):
        SupervisedStep(_model(), nn.functional.cross_entropy, schedule="onecycle")


def test_bad_batches_are_clear_errors():
    with pytest.raises(ValueError, match="batches is empty"):
        fit(_model(), [], epochs=1, loss_fn=nn.functional.cross_entropy, progress=False)
    with pytest.raises(TypeError, match="must have a length"):
        fit(_model(), iter([]), epochs=1, loss_fn=nn.functional.cross_entropy, progress=False)
    with pytest.raises(ValueError, match="epochs must be an integer"):
        fit(_model(), [1], epochs=0, loss_fn=nn.functional.cross_entropy, progress=False)


@pytest.mark.parametrize("warmup", [0, 5])
def test_cosine_schedule_equals_torch_sequential_lr(warmup):
    """Our closed-form schedule (LambdaLR) equals SequentialLR(LinearLR, CosineAnnealingLR)."""
    epochs, steps = 4, 10
    total = epochs * steps
    p = nn.Parameter(torch.zeros(1))
    ours_opt = torch.optim.SGD([p], lr=0.1)
    ours = make_schedule(ours_opt, "cosine", epochs, steps, warmup_epochs=warmup / steps)
    ref_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=total - warmup)
    if warmup:
        linear = torch.optim.lr_scheduler.LinearLR(ref_opt, start_factor=1 / warmup, total_iters=warmup - 1)
        ref = torch.optim.lr_scheduler.SequentialLR(ref_opt, [linear, cosine], milestones=[warmup])
    else:
        ref = cosine
    for _ in range(total):
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], abs=1e-9)
        ours_opt.step(), ours.step()
        ref_opt.step(), ref.step()


def test_multistep_and_warmup_factors():
    assert lr_factor(0, "cosine", 100, warmup=4) == 0.25 and lr_factor(3, "cosine", 100, warmup=4) == 1.0
    assert lr_factor(49, "multistep", 100, milestones=(50, 75)) == 1.0
    assert lr_factor(50, "multistep", 100, milestones=(50, 75)) == pytest.approx(0.1)
    assert lr_factor(99, "multistep", 100, milestones=(50, 75)) == pytest.approx(0.01)


class ToyGANStep(TrainStep):
    """A two-optimizer step (discriminator, then generator), as chapter 04 will use."""

    def __init__(self):
        torch.manual_seed(0)
        self.g = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        self.d = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))

    def modules(self):
        return {"g": self.g, "d": self.d}

    def configure(self, epochs, steps_per_epoch):
        return {"d": (torch.optim.Adam(self.d.parameters(), 1e-2), None),
                "g": (torch.optim.Adam(self.g.parameters(), 1e-2), None)}

    def step(self, batch, ctx):
        real = ctx.to_device(batch)
        bce = nn.functional.binary_cross_entropy_with_logits
        z = torch.randn(len(real), 2)  # the global RNG: a resume must restore it
        fake = self.g(z)
        d_loss = bce(self.d(real), torch.ones(len(real), 1)) + bce(self.d(fake.detach()), torch.zeros(len(real), 1))
        ctx.optimize("d", d_loss)
        g_loss = bce(self.d(fake), torch.ones(len(real), 1))  # non-saturating generator loss
        ctx.optimize("g", g_loss)
        return {"d": d_loss, "g": g_loss}


class Reals:
    """A batch source with its own RNG and a state_dict (as TensorLoader / SegBatches)."""

    def __init__(self):
        self.gen = torch.Generator().manual_seed(7)

    def __len__(self):
        return 5

    def __iter__(self):
        for _ in range(5):
            yield torch.randn(16, 2, generator=self.gen) * 0.5 + torch.tensor([2.0, -1.0])

    def state_dict(self):
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, s):
        self.gen.set_state(s["gen"])


def test_two_optimizer_step_trains_and_logs_both_losses():
    step = ToyGANStep()
    h = Trainer(step, epochs=2, progress=False).fit(Reals())
    assert set(h.epochs[0]) >= {"train_d", "train_g", "lr", "seconds", "images"}
    assert h.epochs[0]["images"] == 80 and h.best_epoch == -1  # no evaluate: the last epoch is kept


def test_two_optimizer_step_resumes_exactly(tmp_path):
    unbroken = ToyGANStep()
    Trainer(unbroken, epochs=4, progress=False).fit(Reals())

    ckpt = tmp_path / "gan.pt"
    calls = []

    def crash_in_epoch_3():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        Trainer(ToyGANStep(), epochs=4, progress=False, evaluate=crash_in_epoch_3, checkpoint=ckpt).fit(Reals())
    torch.manual_seed(123)  # a different global RNG state: only the checkpoint's restores it
    resumed = ToyGANStep()
    resumed.g[0].weight.data.zero_()  # different weights too: the checkpoint must restore them
    Trainer(resumed, epochs=4, progress=False, checkpoint=ckpt).fit(Reals(), resume=True)
    for a, b in zip([*unbroken.g.parameters(), *unbroken.d.parameters()],
                    [*resumed.g.parameters(), *resumed.d.parameters()]):
        assert torch.equal(a, b)


def test_resume_refuses_a_checkpoint_of_another_schedule(tmp_path):
    ckpt = tmp_path / "c.pt"
    Trainer(ToyGANStep(), epochs=2, progress=False, checkpoint=ckpt).fit(Reals())
    with pytest.raises(TrainingError, match="2 epochs x 5 steps, this one has 3 x 5"):
        Trainer(ToyGANStep(), epochs=3, progress=False, checkpoint=ckpt).fit(Reals(), resume=True)


def test_select_by_min_keeps_the_lowest_and_restores_it():
    model = nn.Linear(2, 1)
    scores = iter([3.0, 1.0, 2.0])
    seen = []

    def ev():
        seen.append(model.weight.detach().clone())
        return {"loss": next(scores)}

    batches = [(torch.randn(4, 2), torch.randn(4, 1))] * 2
    h = Trainer(SupervisedStep(model, nn.functional.mse_loss, lr=0.1), epochs=3, evaluate=ev,
                select_by="loss", mode="min", progress=False).fit(batches)
    assert h.best_epoch == 2 and h.best_score == 1.0
    assert torch.equal(model.weight, seen[1])


def test_paper_recipe_is_the_medmnist_protocol():
    d = synthetic("binary-class", n=16)
    kw = recipe("paper", d.train)
    assert kw["epochs"] == 100 and kw["batch_size"] == 128 and kw["optimizer"] == "adam"
    assert kw["lr"] == 1e-3 and kw["weight_decay"] == 0 and kw["schedule"] == "multistep"
    assert kw["milestones"] == (0.5, 0.75) and kw["augment"] is None
    assert kw["drop_last"] is False and kw["amp"] is False  # MedMNIST's DataLoader keeps it; fp32


def test_drop_last_keeps_or_drops_the_partial_batch():
    d = synthetic("binary-class", n=20)  # batches of 8: 8 + 8 + 4
    kw = dict(epochs=1, batch_size=8, progress=False)
    assert train_classifier(_model(), d.train, d.val, **kw).epochs[0]["images"] == 16  # default: dropped
    assert train_classifier(_model(), d.train, d.val, drop_last=False, **kw).epochs[0]["images"] == 20
    paper = {k: v for k, v in recipe("paper", d.train).items() if k not in ("epochs", "batch_size")}
    assert train_classifier(_model(), d.train, d.val, **kw, **paper).epochs[0]["images"] == 20


def test_standard_recipe_and_helpers():
    d = synthetic("binary-class", n=16)
    d.train.labels[:12] = 0
    d.train.labels[12:] = 1
    w = balanced_class_weights(d.train)
    assert torch.allclose(w, torch.tensor([16 / (2 * 12), 16 / (2 * 4)]))
    assert standard_epochs(4708) == 6 and standard_epochs(546) == 40 and standard_epochs(1080) == 22
    with pytest.raises(ValueError, match="valid choices: 'standard', 'paper'"):
        recipe("fast", d.train)


def test_weighted_cross_entropy_divides_by_the_weights_of_the_batch():
    """What chapter 01 writes: sum_i w_{y_i} l_i / sum_i w_{y_i}, not / N."""
    logits, y = torch.randn(6, 2), torch.tensor([0, 0, 0, 0, 1, 1])
    w = torch.tensor([0.5, 2.0])
    per = nn.functional.cross_entropy(logits, y, reduction="none")
    expected = (w[y] * per).sum() / w[y].sum()
    assert torch.allclose(task_loss("binary-class", w)(logits, y), expected)

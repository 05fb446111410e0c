"""A small trainer whose extension point is the training step.

    step = SupervisedStep(model, loss_fn, lr=3e-3)           # or your own TrainStep subclass
    trainer = Trainer(step, epochs=10, evaluate=lambda: {"auc": ...}, select_by="auc")
    history = trainer.fit(batches)                            # any re-iterable of batches

A step owns its models, optimizers and schedules and says what one iteration does (a GAN
alternates a discriminator and a generator update, a VAE minimises its ELBO, SimCLR compares
two views...). The trainer owns everything around it, the same for every step: epochs, the
progress bar and timing, mixed precision (autocast + GradScaler), the non-finite-loss and
out-of-memory guards, best-epoch selection on validation, and checkpoints with exact resume
(models, optimizers, schedules, the scaler, every RNG and the batch source's own state).
The trainer knows no dataset type: `batches` is anything iterable with a length, and with a
`state_dict()` / `load_state_dict()` pair a resumed run draws the same batches.

Losses are accumulated on the device and read once per epoch (or every `log_every` steps),
so the loop does not wait for the GPU at every step. Explained in chapter 01 (supervised)
and used by every chapter that trains.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from medlib.io import save_torch_atomic

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "multistep", "constant")
CHECKPOINT_VERSION = 2


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, out of memory...), with what to try."""


# ----------------------------------------------------------------------------- history
@dataclass
class History:
    """One row per epoch: train losses, lr, seconds, images, images/s and `val_*` metrics."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    select_by: str | None = None

    @property
    def train_seconds(self) -> float:
        return float(sum(e["seconds"] for e in self.epochs))

    @property
    def images_per_s(self) -> float:
        return sum(e["images"] for e in self.epochs) / max(self.train_seconds, 1e-9)

    def column(self, key: str) -> list:
        return [e.get(key) for e in self.epochs]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.epochs).set_index("epoch")


# ----------------------------------------------------------------------------- optimisers
def make_optimizer(params, name: str = "adamw", lr: float = 1e-3, weight_decay: float = 1e-4,
                   lr_scales: dict[str, float] | None = None):
    """AdamW (default), Adam, or SGD with Nesterov momentum 0.9, over `params`.

    Given a model: frozen parameters (`requires_grad=False`) are left out; parameters the model
    names in `no_weight_decay()` get none; `lr_scales` {parameter name: factor} gives those
    parameters `factor * lr` (layer-wise learning rates, chapter 06; schedules scale every group)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid choices: {', '.join(OPTIMIZERS)}")
    if isinstance(params, nn.Module):  # a model may name parameters to spare from decay (ViT: norms, embeddings)
        skip = params.no_weight_decay() if hasattr(params, "no_weight_decay") else set()
        named = [(n, p) for n, p in params.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("every parameter of the model is frozen: nothing to train")
        scales = lr_scales or {}
        groups: dict[tuple[float, bool], list] = {}
        for n, p in named:
            groups.setdefault((scales.get(n, 1.0), n in skip), []).append(p)
        params = [{"params": ps, "lr": lr * scale, **({"weight_decay": 0.0} if no_decay else {})}
                  for (scale, no_decay), ps in sorted(groups.items(), key=lambda kv: kv[0][1])]  # decayed first
    elif lr_scales:
        raise ValueError("lr_scales needs the model (parameter names), not a parameter list")
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)


def lr_factor(step: int, name: str, total: int, warmup: int = 0, milestones=(), gamma: float = 0.1) -> float:
    """The learning-rate multiplier at optimizer step `step` (0-based) of `total` steps.

    Linear warm-up (step + 1) / warmup for the first `warmup` steps, then
    cosine: ½(1 + cos(π t)), t = (step - warmup) / (total - warmup) (equals torch's
    SequentialLR(LinearLR, CosineAnnealingLR), tested); multistep: gamma ** (milestones
    passed, in steps); constant: 1.
    """
    if step < warmup:
        return (step + 1) / warmup
    if name == "cosine":
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if name == "multistep":
        return gamma ** sum(step >= m for m in milestones)
    return 1.0


def make_schedule(opt, name: str, epochs: int, steps_per_epoch: int, warmup_epochs: float = 0.0,
                  milestones=(0.5, 0.75), gamma: float = 0.1):
    """A per-step LambdaLR: `name` in SCHEDULES, warm-up and milestones given in epochs."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid choices: {', '.join(SCHEDULES)}")
    total, warm = epochs * steps_per_epoch, int(warmup_epochs * steps_per_epoch)
    steps = tuple(int(m * epochs) * steps_per_epoch for m in milestones)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, name, total, warm, steps, gamma))


# ----------------------------------------------------------------------------- the step contract
class TrainStep:
    """What one training iteration does. Subclass it and implement:

    - `modules()`: {name: nn.Module} trained by this step (checkpointed, put in train mode
      at the start of every epoch);
    - `configure(epochs, steps_per_epoch)`: {name: (optimizer, schedule or None)};
    - `step(batch, ctx)`: compute the losses under `ctx.autocast()`, update with
      `ctx.optimize(name, loss)`, return {name: 0-dim tensor} to log (not `.item()`: the
      trainer reads them from the device only when it logs).

    Optional: `state_dict()` / `load_state_dict()` for extra state a resume must restore.
    """

    def modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def configure(self, epochs: int, steps_per_epoch: int) -> dict[str, tuple]:
        raise NotImplementedError

    def step(self, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class SupervisedStep(TrainStep):
    """The default step: x, y = batch; loss = loss_fn(model(x), y); one optimizer update.

    Optimizer and schedule as `make_optimizer` / `make_schedule` (`lr_scales`: layer-wise
    learning rates); `max_grad_norm` clips the gradient norm (after unscaling when AMP scales
    the loss).
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, *, optimizer: str = "adamw", lr: float = 1e-3,
                 weight_decay: float = 1e-4, schedule: str = "cosine", warmup_epochs: float = 0.0,
                 milestones=(0.5, 0.75), gamma: float = 0.1, max_grad_norm: float | None = None,
                 lr_scales: dict[str, float] | None = None):
        self.model, self.loss_fn = model, loss_fn
        self.opt_kw = dict(name=optimizer, lr=lr, weight_decay=weight_decay, lr_scales=lr_scales)
        self.sched_kw = dict(name=schedule, warmup_epochs=warmup_epochs, milestones=milestones, gamma=gamma)
        self.max_grad_norm = max_grad_norm
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; valid choices: {', '.join(SCHEDULES)}")

    def modules(self):
        return {"model": self.model}

    def configure(self, epochs, steps_per_epoch):
        opt = make_optimizer(self.model, **self.opt_kw)
        return {"model": (opt, make_schedule(opt, epochs=epochs, steps_per_epoch=steps_per_epoch, **self.sched_kw))}

    def step(self, batch, ctx):
        x, y = ctx.to_device(batch)
        with ctx.autocast():
            loss = self.loss_fn(self.model(x), y)
        ctx.optimize("model", loss, max_grad_norm=self.max_grad_norm)
        return {"loss": loss}


class StepContext:
    """What a step may use: the device, autocast, and `optimize(name, loss)`."""

    def __init__(self, trainer: Trainer):
        self._t = trainer
        self.device = trainer.device
        self.epoch = 0  # 0-based epoch and step within it, for steps that need them
        self.step = 0

    def to_device(self, batch):
        """Move a tensor, or a tuple/list/dict of tensors, to the trainer's device."""
        return _to_device(batch, self.device)

    def autocast(self):
        """Mixed precision on CUDA when the trainer uses AMP; a no-op otherwise."""
        t = self._t
        if t.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=t.amp_dtype)

    def optimize(self, name: str, loss: torch.Tensor, max_grad_norm: float | None = None,
                 retain_graph: bool = False) -> None:
        """zero_grad, backward (scaled under fp16), clip, optimizer step, schedule step."""
        t = self._t
        t._guard(loss, name)
        opt, sched = t.optimizers[name]
        opt.zero_grad(set_to_none=True)
        t.scaler.scale(loss).backward(retain_graph=retain_graph)
        if max_grad_norm:
            t.scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, max_grad_norm)
        t.scaler.step(opt)
        t._stepped.append(name)
        if sched is not None:
            sched.step()

    def lr(self, name: str) -> float:
        return self._t.optimizers[name][0].param_groups[0]["lr"]


def _to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _batch_size(batch) -> int:
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    if isinstance(first, dict):
        first = next(iter(first.values()))
    return len(first) if isinstance(first, torch.Tensor) else 1


# ----------------------------------------------------------------------------- RNG state
def rng_state(batches=None) -> dict:
    """Every RNG a training run draws from: torch (CPU and each CUDA device), NumPy, Python,
    and the batch source's own state when it has a `state_dict()`."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if batches is not None and hasattr(batches, "state_dict"):
        state["batches"] = batches.state_dict()
    return state


def set_rng_state(state: dict, batches=None) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_as_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if batches is not None and "batches" in state:
        if not hasattr(batches, "load_state_dict"):
            raise TrainingError("the checkpoint holds the batch source's state but this batch source "
                                "has no load_state_dict(): pass the same kind of batches to resume")
        batches.load_state_dict(state["batches"])


def _as_tuples(x):  # random.setstate needs tuples; a checkpoint may hand back lists
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """Runs a `TrainStep` for `epochs` over `batches` (see the module docstring).

    evaluate: called after every `eval_every` epochs (and the last), returns {metric: value};
    select_by: the metric whose best epoch is kept (`mode` "max" or "min") and whose weights are
    restored at the end (restore_best); None keeps the last epoch.
    amp: "auto"/True = bf16 (fp16 + GradScaler where bf16 is unsupported) on CUDA, False = fp32.
    checkpoint: a file written atomically after every epoch; `fit(..., resume=True)` continues
    from it exactly as if the run had not been interrupted.
    """

    def __init__(self, step: TrainStep, *, epochs: int, device=None, evaluate: Callable[[], dict] | None = None,
                 select_by: str | None = None, mode: str = "max", eval_every: int = 1, amp: str | bool = "auto",
                 checkpoint: str | Path | None = None, progress: bool = True, log_every: int = 50,
                 restore_best: bool = True):
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if select_by is not None and evaluate is None:
            raise ValueError(f"select_by={select_by!r} needs an `evaluate` function that returns it")
        self.step_impl, self.epochs, self.evaluate = step, epochs, evaluate
        self.select_by, self.mode, self.eval_every = select_by, mode, max(1, int(eval_every))
        self.modules = step.modules()
        first = next(iter(self.modules.values()))
        self.device = torch.device(device) if device is not None else next(first.parameters()).device
        for m in self.modules.values():
            m.to(self.device)
        use_amp = (amp is True or amp == "auto") and self.device.type == "cuda"
        self.amp_dtype = None
        if use_amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.progress, self.log_every, self.restore_best = progress, max(1, int(log_every)), restore_best
        self.optimizers: dict[str, tuple] = {}
        self._stepped: list[str] = []
        self._bad: torch.Tensor | None = None  # non-finite flag, kept on the device
        self._where = ""
        self._acc_dtype = torch.float32 if self.device.type == "mps" else torch.float64

    # -- guards
    def _guard(self, loss: torch.Tensor, name: str) -> None:
        """Stop on a non-finite loss. On the CPU it is checked at once; on a GPU the flag stays
        on the device and is read when the trainer logs, so the loop never waits for it."""
        bad = ~torch.isfinite(loss.detach()).all()
        if self.device.type != "cuda":
            if bad:
                raise TrainingError(self._nan_message(name, loss.item(), self._where))
            return
        self._bad = bad if self._bad is None else (self._bad | bad)
        self._bad_name = name

    def _nan_message(self, name, value, where) -> str:
        lr = self.optimizers[name][0].param_groups[0]["lr"] if name in self.optimizers else float("nan")
        return (f"loss {name!r} became {value} {where}; stopped. Try a lower learning rate "
                f"(now {lr:.2e}), gradient clipping (max_grad_norm=1.0) or check the inputs for NaN/inf.")

    def _check_flag(self, since: str) -> None:
        if self._bad is not None and bool(self._bad):
            raise TrainingError(self._nan_message(self._bad_name, "non-finite", f"between {since} and {self._where}"))
        self._bad = None

    # -- checkpoints
    def _state(self, epoch: int, hist: History, best_state, batches) -> dict:
        return {"version": CHECKPOINT_VERSION, "epoch": epoch, "epochs": self.epochs,
                "steps_per_epoch": self._steps_per_epoch,
                "modules": {k: m.state_dict() for k, m in self.modules.items()},
                "optimizers": {k: o.state_dict() for k, (o, _) in self.optimizers.items()},
                "schedules": {k: s.state_dict() for k, (_, s) in self.optimizers.items() if s is not None},
                "scaler": self.scaler.state_dict(), "step": self.step_impl.state_dict(),
                "history": hist.epochs, "best_epoch": hist.best_epoch, "best_score": hist.best_score,
                "best_state": best_state, "rng": rng_state(batches)}

    def _load(self, state: dict, hist: History, batches):
        if state.get("version") != CHECKPOINT_VERSION:
            raise TrainingError(f"{self.checkpoint} was written by another version of the trainer "
                                f"({state.get('version')}, this one writes {CHECKPOINT_VERSION}); start a new run")
        if (state["epochs"], state["steps_per_epoch"]) != (self.epochs, self._steps_per_epoch):
            raise TrainingError(
                f"{self.checkpoint} is from a run of {state['epochs']} epochs x {state['steps_per_epoch']} steps, "
                f"this one has {self.epochs} x {self._steps_per_epoch}: the schedules would differ. Resume with "
                "the same settings, or start a new run (another checkpoint file)")
        if set(state["modules"]) != set(self.modules):
            raise TrainingError(f"{self.checkpoint} holds modules {sorted(state['modules'])}, "
                                f"this step trains {sorted(self.modules)}")
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, (o, s) in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
            if s is not None:
                s.load_state_dict(state["schedules"][k])
        self.scaler.load_state_dict(state["scaler"])
        self.step_impl.load_state_dict(state["step"])
        hist.epochs, hist.best_epoch, hist.best_score = state["history"], state["best_epoch"], state["best_score"]
        set_rng_state(state["rng"], batches)
        return state["best_state"], state["epoch"] + 1

    # -- the loop
    def fit(self, batches: Iterable, resume: bool = False) -> History:
        """Train; returns the History. With `resume`, continue from `checkpoint` if it exists."""
        try:
            self._steps_per_epoch = len(batches)
        except TypeError:
            raise TypeError("batches must have a length (batches per epoch), e.g. a list, a "
                            "medlib TensorLoader or SegBatches") from None
        if self._steps_per_epoch < 1:
            raise ValueError("batches is empty: nothing to train on (is the training split empty, or "
                             "smaller than one batch with drop_last?)")
        self.optimizers = {k: (v if isinstance(v, tuple) else (v, None))
                           for k, v in self.step_impl.configure(self.epochs, self._steps_per_epoch).items()}
        hist, best_state, start = History(select_by=self.select_by), None, 0
        if self.checkpoint and resume and self.checkpoint.exists():
            state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
            best_state, start = self._load(state, hist, batches)
            if self.progress:
                print(f"resumed from {self.checkpoint} after epoch {start}")
        ctx = StepContext(self)
        bar = tqdm(range(start, self.epochs), desc="epochs", disable=not self.progress, leave=False)
        for epoch in bar:
            for m in self.modules.values():
                m.train()
            row = self._epoch(epoch, batches, ctx)
            metrics = {}
            if self.evaluate is not None and ((epoch + 1) % self.eval_every == 0 or epoch + 1 == self.epochs):
                metrics = self.evaluate()
                if self.select_by is not None and self.select_by not in metrics:
                    raise ValueError(f"evaluate() returned {sorted(metrics)}; it must include {self.select_by!r}")
            row.update({f"val_{k}": float(v) for k, v in metrics.items() if np.isscalar(v)})
            hist.epochs.append(row)
            if self.select_by is not None and self.select_by in metrics:
                score = float(metrics[self.select_by]) * (1 if self.mode == "max" else -1)
                if score > hist.best_score:
                    hist.best_score, hist.best_epoch = score, epoch + 1
                    best_state = {k: {n: v.detach().clone() for n, v in m.state_dict().items()}
                                  for k, m in self.modules.items()}
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.startswith(("train_", "val_"))})
            if self.checkpoint:
                save_torch_atomic(self._state(epoch, hist, best_state, batches), self.checkpoint)
        if self.mode == "min" and hist.best_epoch > 0:
            hist.best_score = -hist.best_score
        if self.restore_best and best_state is not None:
            for k, m in self.modules.items():
                m.load_state_dict(best_state[k])
        return hist

    def _epoch(self, epoch: int, batches, ctx: StepContext) -> dict:
        t0, n_seen, since = time.perf_counter(), 0, f"epoch {epoch + 1}, step 1"
        sums: dict[str, torch.Tensor] = {}
        weight = 0
        for i, batch in enumerate(batches):
            self._where = f"at epoch {epoch + 1}, step {i + 1} (global step {epoch * self._steps_per_epoch + i + 1})"
            ctx.epoch, ctx.step = epoch, i
            n = _batch_size(batch)
            try:
                logs = self.step_impl.step(batch, ctx)
            except torch.OutOfMemoryError:
                raise TrainingError(
                    f"GPU out of memory {self._where} with a batch of {n}: try a smaller batch_size "
                    "(e.g. half), a smaller model or image size, or amp=True") from None
            if self._stepped:
                self.scaler.update()
                self._stepped.clear()
            for k, v in logs.items():  # weighted by the batch size, summed on the device
                v = v.detach().to(self._acc_dtype)
                sums[k] = sums[k] + v * n if k in sums else v * n
            weight += n
            n_seen += n
            if (i + 1) % self.log_every == 0:
                self._check_flag(since)
                since = f"epoch {epoch + 1}, step {i + 2}"
                if self.progress:
                    tqdm.write(f"epoch {epoch + 1} step {i + 1}: " + ", ".join(
                        f"{k} {float(v) / weight:.4f}" for k, v in sums.items()))
        self._check_flag(since)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, **{f"train_{k}": float(v) / max(weight, 1) for k, v in sums.items()}}
        row.update({"lr": ctx.lr(next(iter(self.optimizers))), "seconds": seconds, "images": n_seen,
                    "images_per_s": n_seen / max(seconds, 1e-9)})
        return row


def fit(model: nn.Module, batches: Iterable, *, epochs: int, loss_fn: Callable, evaluate: Callable | None = None,
        select_by: str | None = None, mode: str = "max", device=None, amp: str | bool = "auto",
        checkpoint=None, resume: bool = False, progress: bool = True, eval_every: int = 1,
        **optim: Any) -> History:
    """Supervised training in one call: `Trainer(SupervisedStep(model, loss_fn, **optim), ...)`.

    `optim`: optimizer, lr, weight_decay, schedule, warmup_epochs, milestones, gamma,
    max_grad_norm (see `SupervisedStep`). The best epoch by `select_by` is restored.
    """
    trainer = Trainer(SupervisedStep(model, loss_fn, **optim), epochs=epochs, device=device, evaluate=evaluate,
                      select_by=select_by, mode=mode, amp=amp, checkpoint=checkpoint, progress=progress,
                      eval_every=eval_every)
    return trainer.fit(batches, resume=resume)

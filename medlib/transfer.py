"""Transfer learning and self-supervised pretraining when labels are scarce (chapter 06).

- SimCLR (Chen et al., 2020): two random views of each image, an encoder and a projection head,
  and the NT-Xent loss that pulls the two views of an image together and pushes the other
  images of the batch away. `simclr_augment` is chosen for grey-scale medical images (crops,
  flips, small rotations, brightness/contrast/gamma, blur, noise; no colour jitter).
- Encoders saved with their provenance (source data and its checksum, recipe, seed, cost) and
  loaded with `weights_only=True`; a checkpoint whose bytes changed is refused.
- The fine-tuning strategies: linear probe, early blocks frozen, full fine-tuning, layer-wise
  learning rates; freezing by block (frozen batch-norm layers keep their statistics).
- Label subsets (a stratified fraction of the training labels) and the unlabelled pool.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from medlib.data.augment import Compose, _rand, random_flip
from medlib.data.batches import normalize
from medlib.data.medmnist import Split
from medlib.io import save_torch_atomic, write_json_atomic
from medlib.train import SCHEDULES, TrainStep, make_optimizer, make_schedule

STRATEGIES = ("linear_probe", "freeze_early", "full", "layerwise")
STRATEGY_NAMES = {"scratch": "from scratch", "linear_probe": "linear probe", "freeze_early": "early blocks frozen",
                  "full": "full fine-tuning", "layerwise": "layer-wise learning rates"}


class CheckpointError(RuntimeError):
    """An encoder checkpoint that must not be used (changed since it was saved, or another model)."""


# ----------------------------------------------------------------------------- the encoder
def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The classifier's features before its last linear layer: (B, C, H, W) -> (B, D).
    Works for the suite's CNNs (`features`, `pool`, `head`) and torchvision ResNets (`fc`)."""
    if hasattr(model, "features") and hasattr(model, "pool"):
        return model.pool(model.features(x)).flatten(1)
    if isinstance(model, torchvision.models.ResNet):
        m = model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.avgpool(m.layer4(m.layer3(m.layer2(m.layer1(x))))).flatten(1)
    raise TypeError(f"{type(model).__name__} has no encoder/head split medlib.transfer knows "
                    "(expected .features/.pool/.head or a torchvision ResNet)")


def head_of(model: nn.Module) -> tuple[str, nn.Linear]:
    """(attribute name, the last linear layer) of a classifier."""
    for name in ("head", "fc"):
        if isinstance(getattr(model, name, None), nn.Linear):
            return name, getattr(model, name)
    raise TypeError(f"{type(model).__name__} has no linear `head` or `fc`")


def blocks(model: nn.Module) -> list[nn.Module]:
    """The encoder's blocks, input to output (the units frozen by `freeze`). CompactResNet: the
    stem, then each down-sampling conv and residual block; torchvision ResNets: the stem, layer1-4."""
    if hasattr(model, "features"):
        return list(model.features.children())
    if isinstance(model, torchvision.models.ResNet):
        return [nn.ModuleList([model.conv1, model.bn1]), model.layer1, model.layer2, model.layer3, model.layer4]
    raise TypeError(f"{type(model).__name__}: medlib.transfer does not know its blocks")


def _keep_eval(module: nn.Module, _inputs) -> None:
    module.eval()  # a frozen block's batch norm keeps its running statistics in training mode too


def freeze(model: nn.Module, n_blocks: int | None = None) -> list[nn.Module]:
    """Freeze the first `n_blocks` encoder blocks (None: all of them): no gradient, no change, and
    batch norm in evaluation mode (its running statistics stay those of pretraining). Returns them."""
    bs = blocks(model)
    frozen = bs if n_blocks is None else bs[:n_blocks]
    for b in frozen:
        for p in b.parameters():
            p.requires_grad_(False)
        if not hasattr(b, "_medlib_freeze"):
            b._medlib_freeze = b.register_forward_pre_hook(_keep_eval)
    return frozen


def unfreeze(model: nn.Module) -> None:
    """Undo `freeze` for every block."""
    for b in blocks(model):
        for p in b.parameters():
            p.requires_grad_(True)
        if hasattr(b, "_medlib_freeze"):
            b._medlib_freeze.remove()
            del b._medlib_freeze


def layerwise_scales(model: nn.Module, decay: float = 0.5) -> dict[str, float]:
    """{parameter name: learning-rate factor}: 1 for the head, `decay` for the last encoder block,
    decay² for the one before... (ULMFiT's discriminative fine-tuning; BEiT's layer decay)."""
    bs = blocks(model)
    owner = {id(p): i for i, b in enumerate(bs) for p in b.parameters()}
    return {n: decay ** (len(bs) - owner[id(p)]) for n, p in model.named_parameters() if id(p) in owner}


def prepare(model: nn.Module, strategy: str, freeze_blocks: int = 2, decay: float = 0.5) -> dict:
    """Set a pretrained classifier up for a fine-tuning strategy; returns the extra
    `train_classifier` keywords (`lr_scales` for `layerwise`). `linear_probe` freezes the whole
    encoder, `freeze_early` its first `freeze_blocks` blocks, `full` and `layerwise` none."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid choices: {', '.join(map(repr, STRATEGIES))}")
    unfreeze(model)
    if strategy == "linear_probe":
        freeze(model)
    elif strategy == "freeze_early":
        freeze(model, freeze_blocks)
    return {"lr_scales": layerwise_scales(model, decay)} if strategy == "layerwise" else {}


# ----------------------------------------------------------------------------- SimCLR
def random_crop_resize(x: torch.Tensor, g: torch.Generator, area=(0.4, 1.0), degrees: float = 15.0) -> torch.Tensor:
    """A random crop of `area` (a fraction of the image) resized back to full size, with a small
    rotation: one `grid_sample` per batch. x: (B, C, H, W)."""
    b = len(x)
    s = 1 / torch.sqrt(area[0] + _rand(b, g, x.device) * (area[1] - area[0]))  # zoom >= 1
    room = 1 - 1 / s  # the crop stays inside the image (grid units)
    tx, ty = (_rand(b, g, x.device) * 2 - 1) * room, (_rand(b, g, x.device) * 2 - 1) * room
    angle = (_rand(b, g, x.device) * 2 - 1) * math.radians(degrees)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_contrast_gamma(x: torch.Tensor, g: torch.Generator, brightness=0.3, contrast=0.4, gamma=0.4) -> torch.Tensor:
    """Per image: gamma in [1/(1+gamma), 1+gamma] on [0, 1] intensities, then a contrast scale and a
    brightness shift — what another scanner, dose or gain setting changes. x in about [-1, 1]."""
    shape = (len(x),) + (1,) * (x.ndim - 1)
    r = lambda: _rand(len(x), g, x.device).view(shape)  # noqa: E731
    log_g = (r() * 2 - 1) * math.log1p(gamma)
    x = ((x + 1) / 2).clamp(0, 1).pow(torch.exp(log_g)) * 2 - 1
    mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
    return (x - mean) * (1 + (r() * 2 - 1) * contrast) + mean + (r() * 2 - 1) * brightness


def random_blur_noise(x: torch.Tensor, g: torch.Generator, p_blur=0.5, sigma_blur=1.0, noise=0.1) -> torch.Tensor:
    """Gaussian blur (σ = `sigma_blur` px) on a random share `p_blur` of the batch, then additive
    Gaussian noise of a random level in [0, `noise`] per image (x in about [-1, 1]; a simple
    stand-in for speckle and quantum noise)."""
    shape = (len(x),) + (1,) * (x.ndim - 1)
    k = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    k = torch.exp(-k ** 2 / (2 * sigma_blur ** 2))
    k = k / k.sum()
    c = x.shape[1]
    blurred = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    blurred = F.conv2d(F.pad(blurred, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)
    x = torch.where((_rand(len(x), g, x.device) < p_blur).view(shape), blurred, x)
    level = (_rand(len(x), g, x.device) * noise).view(shape)
    eps = torch.randn(x.shape, generator=g, device=g.device).to(x.device)
    return x + level * eps


def simclr_augment(area=(0.4, 1.0), degrees: float = 15.0, flip: bool = True, contrast: float = 0.4,
                   noise: float = 0.1, gamma: float = 0.4, brightness: float = 0.3, p_blur: float = 0.5) -> Compose:
    """The chapter's SimCLR views for grey-scale medical images: crop-and-resize (`area`), small
    rotation (`degrees`), horizontal flip, gamma/contrast/brightness, blur (`p_blur`), additive
    Gaussian noise (`noise`). SimCLR's colour jitter and grey-scale conversion have nothing to act
    on in a grey image and are left out (RGB targets get the same views). Setting a knob to 0 (or
    `area=(1, 1)`) leaves that augmentation out; the random draws of the others are unchanged."""
    ops = [lambda x, g: random_crop_resize(x, g, area, degrees)]
    if flip:
        ops.append(lambda x, g: random_flip(x, g, dim=-1))
    ops += [lambda x, g: random_contrast_gamma(x, g, brightness=brightness, contrast=contrast, gamma=gamma),
            lambda x, g: random_blur_noise(x, g, p_blur=p_blur, noise=noise)]
    return Compose(ops)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """The NT-Xent loss of SimCLR for projections of two views, z1, z2: (N, d).

    The 2N projections are L2-normalised; for each one, a softmax over its cosine similarities
    to the 2N - 1 others (divided by the temperature) should pick its partner view. The mean of
    the 2N cross-entropies."""
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d)
    sim = z @ z.T / temperature  # (2N, 2N)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, partner)


class ProjectionHead(nn.Module):
    """SimCLR's projection g(h): Linear -> BN -> ReLU -> Linear. The loss sees g(h); the
    downstream task gets h (the encoder's features), which keeps more of the image."""

    def __init__(self, in_dim: int, hidden: int = 128, out_dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SimCLR(nn.Module):
    """A classifier's encoder with a projection head: x -> g(h(x))."""

    def __init__(self, model: nn.Module, hidden: int = 128, out_dim: int = 64):
        super().__init__()
        self.model = model
        self.projector = ProjectionHead(head_of(model)[1].in_features, hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(embed(self.model, x))


class SimCLRStep(TrainStep):
    """One SimCLR iteration: two augmented views of the batch, NT-Xent of their projections,
    one optimizer update. The views come from the step's own seeded generator (checkpointed)."""

    def __init__(self, net: SimCLR, augment, *, temperature: float = 0.5, lr: float = 2e-3,
                 weight_decay: float = 1e-4, schedule: str = "cosine", warmup_epochs: float = 1.0, seed: int = 0):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; valid choices: {', '.join(SCHEDULES)}")
        self.net, self.augment, self.temperature = net, augment, temperature
        self.opt_kw, self.sched_kw = dict(lr=lr, weight_decay=weight_decay), dict(name=schedule, warmup_epochs=warmup_epochs)
        self.seed, self.generator = seed, None  # made on the batches' device at the first step

    def modules(self):
        return {"simclr": self.net}

    def configure(self, epochs, steps_per_epoch):
        opt = make_optimizer(self.net, "adamw", **self.opt_kw)
        return {"simclr": (opt, make_schedule(opt, epochs=epochs, steps_per_epoch=steps_per_epoch, **self.sched_kw))}

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent random views of a batch."""
        if self.generator is None:
            self.generator = torch.Generator(device=x.device).manual_seed(self.seed)
        return self.augment(x, self.generator), self.augment(x, self.generator)

    def step(self, batch, ctx):
        x = ctx.to_device(batch[0] if isinstance(batch, (tuple, list)) else batch)
        v1, v2 = self.views(x)
        with ctx.autocast():
            loss = nt_xent(self.net(v1), self.net(v2), self.temperature)
        ctx.optimize("simclr", loss)
        return {"loss": loss}

    def state_dict(self):
        g = self.generator
        return {"generator": None if g is None else g.get_state(), "device": None if g is None else str(g.device)}

    def load_state_dict(self, state):
        if state.get("generator") is not None:
            if self.generator is None:
                self.generator = torch.Generator(device=state.get("device", "cpu")).manual_seed(self.seed)
            self.generator.set_state(state["generator"])


# ----------------------------------------------------------------------------- data
def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 images (N, C, H, W) to `channels` (1 or 3): RGB -> grey by luminance (ITU-R 601),
    grey -> RGB by copying."""
    c = images.shape[1]
    if c == channels:
        return images
    if c == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if c == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def unlabelled_pool(splits: list[Split], channels: int, info) -> Split:
    """The training images of several datasets as one unlabelled split (labels 0, `info`'s
    dataset description), converted to `channels`. Only training splits: no validation or test
    image of any dataset is seen by pretraining."""
    images = torch.cat([to_channels(s.images, channels) for s in splits])
    return Split(images, torch.zeros(len(images), 1, dtype=torch.long), info, "pool")


def label_subset(split: Split, fraction: float, seed: int = 0) -> Split:
    """A stratified `fraction` of a training split's labelled images (at least one per class)."""
    check_fraction(fraction)
    return split.subset(max(split.info.n_classes, round(fraction * len(split))), seed=seed)


def check_fraction(fraction) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"label_fraction must be a number in (0, 1], e.g. 0.1 for 10% of the labels; got {fraction!r}")


# ----------------------------------------------------------------------------- checkpoints
def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_encoder(path: str | Path, model: nn.Module, provenance: dict, head: bool = False) -> Path:
    """Save a classifier's encoder (every weight but the head; with `head`, the whole classifier)
    with its provenance: `path` (.pt, the weights and the provenance) and `path`.json (the
    provenance and the file's SHA-256)."""
    path = Path(path)
    prefix = "\0" if head else head_of(model)[0] + "."
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith(prefix)}
    save_torch_atomic({"state_dict": state, "provenance": provenance}, path)
    write_json_atomic(path.with_suffix(".json"), {**provenance, "sha256": sha256(path)}, overwrite=True)
    return path


def read_provenance(path: str | Path) -> dict:
    meta = Path(path).with_suffix(".json")
    if not meta.exists():
        raise CheckpointError(f"{path}: no provenance file {meta.name} beside it; pretrain again (it is saved with one)")
    return json.loads(meta.read_text())


def load_encoder(path: str | Path, model: nn.Module) -> dict:
    """Load an encoder saved by `save_encoder` into `model` (its head is left as built) and
    return the provenance. Refused (CheckpointError) when the file's SHA-256 differs from the one
    recorded at saving (an accidental or partial change: a corrupted copy, a file replaced without
    its provenance — not a signature: whoever can rewrite both files can forge it), or the weights
    do not fit the model. A grey encoder loaded into an RGB
    model gets its first convolution copied to 3 channels, divided by 3 (and RGB -> grey summed)."""
    meta = read_provenance(path)
    if sha256(path) != meta.get("sha256"):
        raise CheckpointError(f"{path} changed after it was saved (SHA-256 differs from {Path(path).with_suffix('.json').name}); "
                              "delete both files and pretrain again")
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    own = model.state_dict()
    first = next((k for k, v in state.items() if v.ndim == 4), None)  # the first convolution
    if first in own and state[first].shape[1] == 1 and own[first].shape[1] == 3:
        state[first] = state[first].expand(-1, 3, -1, -1) / 3  # grey -> RGB: the same response to grey input
    elif first in own and state[first].shape[1] == 3 and own[first].shape[1] == 1:
        state[first] = state[first].sum(1, keepdim=True)  # RGB -> grey
    head = head_of(model)[0] + "."
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes differ
        raise CheckpointError(f"{path} does not fit this model ({str(e).splitlines()[-1].strip()}); "
                              "pretrain for this architecture") from None
    if unexpected or any(not k.startswith(head) for k in missing):
        raise CheckpointError(f"{path} does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                              "pretrain for this architecture")
    return meta


# ----------------------------------------------------------------------------- frozen features
@torch.no_grad()
def features(model: nn.Module, split: Split, device=None, batch_size: int = 512) -> np.ndarray:
    """(N, D) what the model's last linear layer reads for a split's images (normalised as in
    training), in eval mode: a forward pre-hook on that layer collects it. For the suite's CNNs
    and torchvision ResNets this is `embed`'s encoder output; it also works for the ViT, the
    hybrids and the volume classifiers (chapter 08 fuses them with handcrafted features)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer whose input could serve as features")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was = model.training
    model.eval()
    out: list[torch.Tensor] = []
    handle = linears[-1].register_forward_pre_hook(lambda m, args: out.append(args[0].detach().float().cpu()))
    try:
        for i in range(0, len(split), batch_size):
            model(normalize(split.images[i:i + batch_size]).to(device))
    finally:
        handle.remove()
        model.train(was)
    return torch.cat(out).numpy()


def probe(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, task: str) -> float:
    """A linear probe on frozen features: standardised, logistic regression (scikit-learn,
    L2, C = 1), scored by validation AUC. The quick way to ask what an encoder's features hold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from medlib.metrics.classification import auc

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(train_x, train_y.ravel())
    s = clf.predict_proba(val_x)
    return auc(val_y.reshape(len(val_y), -1), s, task)


def imagenet_checkpoint(arch: str = "resnet18") -> Path | None:
    """torchvision's ImageNet weights for `arch` if they are already in the local torch cache
    (torch.hub's checkpoints folder), else None. Never downloads."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    return path if path.exists() else None

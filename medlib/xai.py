"""Attribution methods and the tests that say whether to believe them (chapter 09).

Every method takes a model in eval mode, a batch `x` (B, C, H, W) as the model sees it
(normalised) and the class ids `target` (B,), and returns a relevance map (B, H, W): the
higher, the more that pixel is said to matter for `target`. Gradient methods explain the
target's logit. IG and Grad-CAM are written out (chapter 09 writes them again on the page and
checks both against Captum); occlusion and KernelSHAP come from Captum.

The evaluation metrics: deletion / insertion curves and ROAD (faithfulness), the pointing game
and energy inside a mask (localisation against a known truth), and rank correlation / SSIM of
maps before and after randomising the model (sanity checks, Adebayo et al. 2018).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NAMES = {"gradients": "Gradients", "smoothgrad": "SmoothGrad", "ig": "Integrated Gradients",
         "occlusion": "Occlusion", "gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "kernelshap": "KernelSHAP",
         "rollout": "Attention rollout", "random": "random map (reference)", "edges": "edge detector (reference)"}
REFERENCES = ("random", "edges")  # maps that do not look at the model: what a useless method scores


def _logit(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return model(x).gather(1, target.view(-1, 1)).squeeze(1)


def _input_grad(model, x, target) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(_logit(model, x, target).sum(), x)[0]


def gradients(model, x, target) -> torch.Tensor:
    """Vanilla gradients (Simonyan et al., 2014): |d logit / d pixel|, the largest over channels."""
    return _input_grad(model, x, target).abs().amax(1)


def smoothgrad(model, x, target, samples: int = 16, sigma: float = 0.15, seed: int = 0) -> torch.Tensor:
    """SmoothGrad (Smilkov et al., 2017): the mean |gradient| over copies of x with Gaussian noise of
    `sigma` times each image's value range added (Captum's NoiseTunnel with abs=True)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    total = torch.zeros_like(x)
    for _ in range(samples):
        noise = torch.randn(x.shape, generator=g).to(x.device) * sigma * span
        total += _input_grad(model, x + noise, target).abs()
    return (total / samples).amax(1)


def integrated_gradients(model, x, target, baseline: torch.Tensor | None = None, steps: int = 32) -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al., 2017), per channel (B, C, H, W):
    (x - x') * integral_0^1 grad F(x' + a (x - x')) da, by the midpoint rule: the mean gradient at
    a = (k + 1/2) / steps, k = 0..steps-1 (Captum's method="riemann_middle"). Completeness: the
    sum ~ F(x) - F(x'). Baseline x' = 0 (mid-grey)."""
    baseline = torch.zeros_like(x) if baseline is None else baseline.expand_as(x)
    total = torch.zeros_like(x)
    for k in range(steps):
        total += _input_grad(model, baseline + (k + 0.5) / steps * (x - baseline), target)
    return (x - baseline) * total / steps


def ig(model, x, target, steps: int = 32) -> torch.Tensor:
    """Integrated Gradients as a map: summed over channels, signed (evidence for the target)."""
    return integrated_gradients(model, x, target, steps=steps).sum(1)


class _Capture:
    """The output of `layer` in the next forward pass (tokens reshaped to a grid by `reshape`)."""

    def __init__(self, layer: nn.Module, reshape: Callable | None = None):
        self.layer, self.reshape, self.out = layer, reshape, None

    def __enter__(self):
        self.handle = self.layer.register_forward_hook(lambda m, i, o: setattr(self, "out", o))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def layer_activation_and_grad(model, x, target, layer, reshape=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's activations A (B, K, h, w) and d logit / dA, for Grad-CAM."""
    with _Capture(layer) as cap:
        score = _logit(model, x, target)
    grad = torch.autograd.grad(score.sum(), cap.out)[0]
    a = cap.out
    if reshape is not None:
        a, grad = reshape(a), reshape(grad)
    return a.detach(), grad.detach()


def gradcam_lowres(model, x, target, layer, reshape=None, plus: bool = False) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017) at the layer's resolution (B, h, w):
    ReLU(sum_k alpha_k A_k), alpha_k = the mean over positions of d logit / dA_k.
    `plus`: Grad-CAM++ (Chattopadhay et al., 2018) weights, as pytorch-grad-cam computes them."""
    a, g = layer_activation_and_grad(model, x, target, layer, reshape)
    if plus:
        g2, g3 = g.pow(2), g.pow(3)
        denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g3
        aij = torch.where(g != 0, g2 / (denom + 1e-6), torch.zeros_like(g))
        weights = (g.clamp(min=0) * aij).sum((2, 3), keepdim=True)
    else:
        weights = g.mean((2, 3), keepdim=True)
    return F.relu((weights * a).sum(1))


def upsample(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(B, h, w) -> (B, H, W), bilinear (half-pixel centres, as cv2.resize and Captum)."""
    size = (size, size) if isinstance(size, int) else size
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def gradcam(model, x, target, layer, reshape=None, plus: bool = False) -> torch.Tensor:
    """Grad-CAM (or ++) upsampled to the input: blocky where the layer is coarse (7 x 7 at 28 px)."""
    return upsample(gradcam_lowres(model, x, target, layer, reshape, plus), x.shape[-2:])


def grid_mask(size: int, cell: int, device=None) -> torch.Tensor:
    """(1, 1, size, size) feature ids of square cells: the superpixels KernelSHAP switches on and off."""
    idx = torch.arange(size, device=device) // cell
    n = (size + cell - 1) // cell
    return (idx[:, None] * n + idx[None, :])[None, None]


def occlusion(model, x, target, window: int | None = None, stride: int | None = None) -> torch.Tensor:
    """Occlusion (Zeiler & Fergus, 2014), Captum's: the drop in the logit when a window (size / 7
    px) is set to 0 (mid-grey), averaged over the windows covering each pixel; summed over channels."""
    from captum.attr import Occlusion

    s, c = x.shape[-1], x.shape[1]
    window = window or max(2, s // 7)
    stride = stride or window  # non-overlapping: one forward pass per window (7 x 7 = 49 of them)
    out = Occlusion(model).attribute(x, target=target, sliding_window_shapes=(c, window, window),
                                     strides=(c, stride, stride), baselines=0.0, perturbations_per_eval=64)
    return out.sum(1).detach()


def kernelshap(model, x, target, cell: int | None = None, samples: int = 128, seed: int = 0) -> torch.Tensor:
    """KernelSHAP (Lundberg & Lee, 2017) through Captum, on square superpixels of `cell` px
    (4 x 4 of them by default: few enough features for `samples` coalitions) switched to 0
    (mid-grey); summed over channels."""
    from captum.attr import KernelShap

    cell = cell or max(1, x.shape[-1] // 4)
    mask = grid_mask(x.shape[-1], cell, x.device)
    torch.manual_seed(seed)  # Captum draws its coalitions from the global generator
    ks = KernelShap(model)
    out = torch.cat([ks.attribute(x[i:i + 1], target=target[i:i + 1], feature_mask=mask, baselines=0.0,
                                  n_samples=samples, perturbations_per_eval=samples) for i in range(len(x))])
    return out.sum(1).detach()


def edges(model, x, target) -> torch.Tensor:
    """A reference that ignores the model: Sobel edge magnitude of the image (channel mean)."""
    k = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]], device=x.device)
    img = x.mean(1, keepdim=True)
    gx = F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), k.view(1, 1, 3, 3))
    gy = F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), k.T.reshape(1, 1, 3, 3))
    return (gx.pow(2) + gy.pow(2)).sqrt()[:, 0]


def random_map(model, x, target, seed: int = 0) -> torch.Tensor:
    """A reference that ignores everything: uniform noise, drawn anew for each model (seeded by the
    seed and the model's weights, so the same model and seed give the same map)."""
    with torch.no_grad():
        weights = sum(float(p.double().abs().sum()) for p in model.parameters())
    g = torch.Generator(device="cpu").manual_seed((seed * 1_000_003 + int(weights * 1e4)) % 2**63)
    return torch.rand((len(x), *x.shape[-2:]), generator=g).to(x.device)


def rollout_map(model, x, target) -> torch.Tensor:
    """Attention rollout of a medlib ViT (chapter 07), upsampled to the input. Class-agnostic."""
    from medlib.models.vit import cls_map

    return upsample(cls_map(model, x), x.shape[-2:])


# ---------------------------------------------------------------- which layer, which method
def vit_reshape(grid: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Tokens (B, 1 + g*g, D) -> a map (B, D, g, g): the class token dropped, the patches in a grid."""
    def reshape(t: torch.Tensor) -> torch.Tensor:
        return t[:, 1:].transpose(1, 2).reshape(len(t), -1, grid, grid)
    return reshape


def cam_layers(model: nn.Module, size: int, channels: int) -> dict[str, tuple[nn.Module, Callable | None]]:
    """Grad-CAM target layers, deepest first: {name: (module, reshape)}.

    A medlib ViT: each block's normalised input, `norm1` (tokens on the patch grid; as
    pytorch-grad-cam's ViT example). A CNN with a `features`
    Sequential (CompactResNet, SimpleCNN): the last module at each resolution, found by a dummy
    forward pass; torchvision ResNets: layer4..layer1."""
    from medlib.models.vit import ViT

    if isinstance(model, ViT):  # a block's normalised input: the last block's output feeds only the class
        g = model.grid          # token to the head, so its patch tokens get no gradient (an all-zero map)
        return {f"block {i + 1} input ({g}x{g} tokens)": (b.norm1, vit_reshape(g))
                for i, b in reversed(list(enumerate(model.blocks)))}
    if hasattr(model, "features") and isinstance(model.features, nn.Sequential):
        shapes, hooks = {}, []
        for i, m in enumerate(model.features):
            hooks.append(m.register_forward_hook(lambda mod, inp, out, i=i: shapes.__setitem__(i, tuple(out.shape[-2:]))))
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(torch.zeros(1, channels, size, size, device=next(model.parameters()).device))
        finally:
            model.train(was)
            for h in hooks:
                h.remove()
        last = {shape: i for i, shape in shapes.items()}  # the last module at each resolution
        return {f"features.{i} ({s[0]}x{s[1]})": (model.features[i], None) for s, i in sorted(last.items())}
    if all(hasattr(model, f"layer{k}") for k in range(1, 5)):
        return {f"layer{k}": (getattr(model, f"layer{k}"), None) for k in (4, 3, 2, 1)}
    raise ValueError(f"no Grad-CAM layers known for {type(model).__name__}; pass (module, reshape) yourself")


def methods_for(model: nn.Module) -> list[str]:
    """The chapter's methods for a model (rollout only for a ViT), then the two references."""
    from medlib.models.vit import ViT

    own = ["gradients", "smoothgrad", "ig", "occlusion", "gradcam", "gradcampp", "kernelshap"]
    return own + (["rollout"] if isinstance(model, ViT) else []) + list(REFERENCES)


def attribute(method: str, model, x, target, layer=None, batch_size: int = 64, **kwargs) -> torch.Tensor:
    """Maps (B, H, W) on the CPU for `method` (a key of NAMES), in batches. `layer`: a
    (module, reshape) pair for Grad-CAM (default: the deepest of `cam_layers`)."""
    if method not in NAMES:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(NAMES)}")
    model.eval()
    if method in ("gradcam", "gradcampp") and layer is None:
        layer = next(iter(cam_layers(model, x.shape[-1], x.shape[1]).values()))
    fns = {"gradients": gradients, "smoothgrad": smoothgrad, "ig": ig, "occlusion": occlusion,
           "kernelshap": kernelshap, "rollout": rollout_map, "edges": edges, "random": random_map,
           "gradcam": lambda m, xb, t, **kw: gradcam(m, xb, t, *layer, **kw),
           "gradcampp": lambda m, xb, t, **kw: gradcam(m, xb, t, *layer, plus=True, **kw)}
    out = []
    for i in range(0, len(x), batch_size):
        extra = dict(kwargs)
        if method in ("smoothgrad", "random", "kernelshap"):  # a different draw per batch, reproducible
            extra["seed"] = kwargs.get("seed", 0) + i
        out.append(fns[method](model, x[i:i + batch_size], target[i:i + batch_size], **extra).detach().cpu())
    return torch.cat(out).float()


# ---------------------------------------------------------------- faithfulness
def ranks(maps: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> the rank of each pixel, 0 = most relevant (ties in index order)."""
    flat = maps.flatten(1)
    order = torch.argsort(-flat, dim=1, stable=True)
    r = torch.empty_like(order)
    r.scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order).contiguous())
    return r.view_as(maps)


@torch.no_grad()
def _probs(model, x, target, batch_size=512) -> torch.Tensor:
    out = [model(x[i:i + batch_size]).softmax(1).gather(1, target[i:i + batch_size].view(-1, 1))[:, 0]
           for i in range(0, len(x), batch_size)]
    return torch.cat(out)


def blur(x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """A Gaussian blur (sigma = size / 10 by default): insertion's starting image (Petsiuk et al., 2018)."""
    sigma = sigma or x.shape[-1] / 10
    r = int(3 * sigma)
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect" if r < x.shape[-1] else "replicate"),
                 k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect" if r < x.shape[-2] else "replicate"),
                    k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def perturbation_curve(model, x, target, maps, steps: int = 16, mode: str = "deletion",
                       fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """The target's probability as the most relevant pixels are removed (deletion: set to `fill`,
    0 = mid-grey) or inserted (insertion: into a blurred copy), a fraction k/steps at a time,
    k = 0..steps: (B, steps + 1). A faithful map makes deletion fall fast and insertion rise fast."""
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    model.eval()
    device = x.device
    r = ranks(maps).to(device)[:, None]  # (B, 1, H, W)
    n = r[0].numel()
    other = blur(x) if mode == "insertion" else torch.as_tensor(fill, dtype=x.dtype, device=device).expand_as(x)
    curve = []
    for k in range(steps + 1):
        top = r < round(k * n / steps)  # the k/steps most relevant pixels
        xk = torch.where(top, other, x) if mode == "deletion" else torch.where(top, x, other)
        curve.append(_probs(model, xk, target.to(device)).cpu())
    return torch.stack(curve, 1)


def curve_auc(curve: torch.Tensor) -> torch.Tensor:
    """Area under curves sampled at fractions 0, 1/steps, ..., 1 (trapezoid): (B,)."""
    steps = curve.shape[1] - 1
    return ((curve[:, 1:] + curve[:, :-1]) / 2).sum(1) / steps


_NEIGHBOURS = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])


def impute_linear(x: torch.Tensor, removed: torch.Tensor, iters: int | None = None) -> torch.Tensor:
    """ROAD's linear imputation (Rong et al., 2022): every removed pixel becomes the weighted mean
    of its 8 neighbours (1/6 sideways, 1/12 diagonal; renormalised at the border), removed
    neighbours included: a sparse linear system, solved here by Jacobi iteration from the mean
    of the kept pixels. `removed` (B, 1, H, W) bool. Tested against a direct sparse solve."""
    iters = iters or 6 * x.shape[-1]
    c = x.shape[1]
    k = _NEIGHBOURS.to(x).view(1, 1, 3, 3)
    norm = F.conv2d(torch.ones_like(x[:, :1]), k, padding=1)
    kept_mean = (x * ~removed).sum((2, 3), keepdim=True) / (~removed).sum((2, 3), keepdim=True).clamp(min=1)
    y = torch.where(removed, kept_mean.expand_as(x), x)
    kc = k.repeat(c, 1, 1, 1)
    for _ in range(iters):
        y = torch.where(removed, F.conv2d(y, kc, padding=1, groups=c) / norm, x)
    return y


def road_curve(model, x, target, maps, fractions=(0.1, 0.3, 0.5, 0.7), order: str = "morf",
               noise: float = 0.01, seed: int = 0) -> torch.Tensor:
    """ROAD, remove and debias (Rong et al., 2022): the target's probability after the most
    (`morf`) or least (`lerf`) relevant fraction of pixels is imputed from its neighbours plus
    a little noise — removal that leaks no shape of the mask to the model. (B, len(fractions))."""
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' or 'lerf', got {order!r}")
    model.eval()
    r = ranks(maps if order == "morf" else -maps).to(x.device)[:, None]
    n = r[0].numel()
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    for f in fractions:
        removed = (r < round(f * n)).expand(-1, 1, -1, -1)
        xi = impute_linear(x, removed)
        xi = xi + removed * torch.randn(x.shape, generator=g).to(x.device) * noise * 2  # noise in [-1, 1] units
        out.append(_probs(model, xi, target.to(x.device)).cpu())
    return torch.stack(out, 1)


# ---------------------------------------------------------------- localisation
def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: int | None = None) -> torch.Tensor:
    """Hit (1.) when the map's maximum falls inside the mask grown by `tolerance` px (Zhang et al.,
    2018; the first maximum in reading order). maps, masks (B, H, W) -> (B,). Default tolerance:
    their 15 px at 224 px, scaled to the image (2 px at 28 px, 4 px at 64 px)."""
    if tolerance is None:
        tolerance = max(1, round(15 * maps.shape[-1] / 224))
    grown = F.max_pool2d(masks[:, None].float(), 2 * tolerance + 1, 1, tolerance)[:, 0] > 0 if tolerance else masks.bool()
    best = maps.flatten(1).argmax(1)
    return grown.flatten(1).gather(1, best[:, None])[:, 0].float()


def energy_in_mask(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The share of the map's positive mass inside the mask (Wang et al., 2020, Score-CAM) (B,)."""
    pos = maps.clamp(min=0).flatten(1)
    return (pos * masks.flatten(1).float()).sum(1) / pos.sum(1).clamp(min=1e-12)


def plant_markers(images: torch.Tensor, present: torch.Tensor, seed: int = 0, amplitude: float = 90.0,
                  sigma: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A lesion-like bright Gaussian blob added at a random place in each image where `present`.

    images (N, C, H, W) uint8 -> (marked images uint8, masks (N, H, W) bool: the blob's core,
    where it exceeds a quarter of its peak). sigma: 1.5 px at 28 px, scaled with the size."""
    n, _, h, w = images.shape
    sigma = sigma or 1.5 * h / 28
    r = int(np.ceil(2 * sigma))
    g = torch.Generator().manual_seed(seed)
    cy = torch.randint(r + 1, h - r - 1, (n,), generator=g).float()
    cx = torch.randint(r + 1, w - r - 1, (n,), generator=g).float()
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    blob = torch.exp(-((yy - cy.view(-1, 1, 1)) ** 2 + (xx - cx.view(-1, 1, 1)) ** 2) / (2 * sigma ** 2))
    blob = blob * present.view(-1, 1, 1).float()
    out = (images.float() + amplitude * blob[:, None]).clamp(0, 255).round().to(torch.uint8)
    return out, blob > 0.25


# ---------------------------------------------------------------- sanity checks
def randomization_stages(model: nn.Module) -> list[tuple[str, str]]:
    """The cascade of Adebayo et al. (2018): the model's parameterised parts from the output back
    to the input (one level into Sequentials), as (stage name, module path); parameters held by
    the model itself (a ViT's class token and positions) come last, as path ""."""
    parts = []
    for name, child in model.named_children():
        kids = list(child.named_children()) if isinstance(child, nn.Sequential) else [("", child)]
        for sub, m in kids:
            if any(True for _ in m.parameters()):
                parts.append(f"{name}.{sub}" if sub else name)
    stages = [(p, p) for p in reversed(parts)]
    if any(True for _ in model.parameters(recurse=False)):
        stages.append(("tokens", ""))
    return stages


def _reinit(module: nn.Module, own_only: bool = False) -> None:
    """New random weights: each layer's own initialiser; batch-norm gains and shifts drawn too
    (their reset is the identity); bare parameters from N(0, 0.02^2)."""
    for m in ([module] if own_only else list(module.modules())):
        if not own_only and hasattr(m, "reset_parameters"):
            m.reset_parameters()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.normal_(m.bias, 0.0, 0.1)
        elif own_only or not hasattr(m, "reset_parameters"):
            for p in m.parameters(recurse=False):
                nn.init.normal_(p, 0.0, 0.02)


@torch.no_grad()
def cascading_randomization(model: nn.Module, seed: int = 0):
    """Yield (stage name, a copy of `model` with this and every earlier stage re-initialised),
    from the output layer back to the input. The original is left alone."""
    m = copy.deepcopy(model).eval()
    torch.manual_seed(seed)
    for name, path in randomization_stages(model):
        _reinit(m.get_submodule(path), own_only=path == "")
        yield name, m


def spearman(a: torch.Tensor, b: torch.Tensor, absolute: bool = True) -> torch.Tensor:
    """Per-image Spearman rank correlation of two map batches (B, H, W) -> (B,); on |maps| by
    default, as Adebayo et al. (the sign of a map often flips under randomisation). A constant
    map (e.g. Grad-CAM all zero after ReLU) keeps no ranking: its correlation is 0."""
    from scipy.stats import rankdata

    if absolute:
        a, b = a.abs(), b.abs()
    ra = torch.from_numpy(rankdata(a.flatten(1).numpy(), axis=1)).float()
    rb = torch.from_numpy(rankdata(b.flatten(1).numpy(), axis=1)).float()
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = ra.norm(dim=1) * rb.norm(dim=1)
    return torch.where(den > 0, (ra * rb).sum(1) / den.clamp(min=1e-12), torch.zeros_like(den))


def map_ssim(a: torch.Tensor, b: torch.Tensor, absolute: bool = True) -> torch.Tensor:
    """Per-image SSIM of two map batches, each map min-max scaled to [0, 1] first (B,)."""
    from skimage.metrics import structural_similarity

    def unit(m):
        m = m.abs() if absolute else m
        lo, hi = m.amin((1, 2), keepdim=True), m.amax((1, 2), keepdim=True)
        return ((m - lo) / (hi - lo).clamp(min=1e-12)).numpy()

    ua, ub = unit(a), unit(b)
    win = min(7, a.shape[-1] - (1 - a.shape[-1] % 2))
    return torch.tensor([structural_similarity(x, y, data_range=1.0, win_size=win) for x, y in zip(ua, ub)], dtype=torch.float32)


def mean_ci(values, n: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap (1 - alpha) interval over images."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (n, len(v)))].mean(1)
    return float(v.mean()), float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))

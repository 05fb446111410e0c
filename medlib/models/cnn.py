"""Convolutional classifiers for 2D MedMNIST: a configurable small CNN, ResNet-18/50 as
MedMNIST v2's experiments define them, and the suite's compact residual net for CPUs.

ResNet stems follow image size: at 28 px MedMNIST's own small-image ResNet (3x3 stride-1 stem,
no max-pool, PyTorch's default initialisation); at 64 px the same network (this suite's
choice: MedMNIST v2's scripts have no 64 px setting); at >= 128 px torchvision's ImageNet
ResNet (7x7 stride-2 stem + max-pool, kaiming-normal init), which MedMNIST v2 trains at 224 px.

Plus `build_model(name, ...)` (the registry `MODELS`, with a clear error for unknown names).
Explained in chapter 01.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torchvision

from medlib.models.common import build, conv_bn_relu


class SimpleCNN(nn.Module):
    """[conv3x3 -> (BN) -> ReLU -> max-pool 2] per width, global average pool, (dropout), linear.

    x (B, C, H, W) -> logits (B, num_classes). Every block halves H and W.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, widths=(16, 32, 64),
                 batch_norm: bool = True, dropout: float = 0.0):
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=not batch_norm)]
            layers += [nn.BatchNorm2d(w)] if batch_norm else []
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)  # (B, C_last)
        return self.head(self.dropout(x))


IMAGENET_STEM_FROM = 128  # px: from this size on, ResNets keep torchvision's ImageNet stem


def _medmnist_stem(net: torchvision.models.ResNet, in_channels: int) -> torchvision.models.ResNet:
    """MedMNIST's small-image ResNet (experiments/MedMNIST2D/models.py, from kuangliu/pytorch-cifar):
    3x3 stride-1 stem conv, no max-pool. torchvision's blocks have the same layers; its
    kaiming-normal (fan_out) conv init is replaced by PyTorch's default, which MedMNIST's
    models keep (BatchNorm starts at weight 1, bias 0 in both)."""
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.reset_parameters()
    return net


def _imagenet_stem(net: torchvision.models.ResNet, in_channels: int) -> torchvision.models.ResNet:
    """torchvision's ResNet as it is (7x7 stride-2 stem + 3x3 stride-2 max-pool), the network
    MedMNIST v2's script trains at 224 px (`--resize`). For inputs with other than 3 channels
    the stem conv is rebuilt with the same shape and init; MedMNIST instead copies grey images
    to 3 channels (`--as_rgb`)."""
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    return net


def _stem(net: torchvision.models.ResNet, in_channels: int, size: int) -> torchvision.models.ResNet:
    return (_imagenet_stem if size >= IMAGENET_STEM_FROM else _medmnist_stem)(net, in_channels)


def resnet18(in_channels: int = 1, num_classes: int = 2, size: int = 28) -> torchvision.models.ResNet:
    """ResNet-18 (He 2016) as MedMNIST v2 trains it. 28 and 64 px: 3x3 stem, no max-pool,
    11.2 M parameters (feature maps 28/14/7/4 px at 28 px); >= 128 px: torchvision's ImageNet
    ResNet-18 (at 224 px: 56/28/14/7 px after the stem)."""
    return _stem(torchvision.models.resnet18(weights=None, num_classes=num_classes), in_channels, size)


def resnet50(in_channels: int = 1, num_classes: int = 2, size: int = 28) -> torchvision.models.ResNet:
    """ResNet-50 with the same size-dependent stem as `resnet18` (23.5 M parameters)."""
    return _stem(torchvision.models.resnet50(weights=None, num_classes=num_classes), in_channels, size)


class ResBlock(nn.Module):
    """Pre-activation-free basic residual block: x + BN(conv(ReLU(BN(conv(x))))), then ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class CompactResNet(nn.Module):
    """The suite's CPU model: a 3-stage residual net, width doubling as resolution halves.

    stem conv3x3 (C -> w) at full resolution, then per stage: [stride-2 conv (stages 2, 3)]
    + `depths[i]` residual blocks; global average pool, dropout, linear. The default
    (w = 24, depths 0/1/1) at 28 px: 24/48/96 channels at 28/14/7 px, 0.26 M parameters and
    20 M MACs per image (ResNet-18 (28): 11.2 M and 456 M). At 64 px a stride-2 stem keeps
    the cost similar. Full-resolution residual blocks cost the most and helped least.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 24,
                 depths=(0, 1, 1), dropout: float = 0.1, stem_stride: int = 1):
        super().__init__()
        w = width
        layers = [conv_bn_relu(in_channels, w, stem_stride)]
        for i, (c, d) in enumerate(zip((w, 2 * w, 4 * w), depths)):
            if i > 0:
                layers.append(conv_bn_relu(c // 2, c, stride=2))  # (B, c, H/2, W/2)
            layers += [ResBlock(c) for _ in range(d)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)  # (B, 4w)
        return self.head(self.dropout(x))


def _simple(in_channels: int, num_classes: int, size: int = 28) -> SimpleCNN:
    return SimpleCNN(in_channels, num_classes)


def _compact(in_channels: int, num_classes: int, size: int = 28) -> CompactResNet:
    return CompactResNet(in_channels, num_classes, stem_stride=1 if size <= 32 else 2)


# name -> factory(in_channels, num_classes, size)
MODELS: dict[str, Callable[..., nn.Module]] = {
    "simplecnn": _simple,
    "compactresnet": _compact,
    "resnet18": resnet18,
    "resnet50": resnet50,
}


def build_model(name: str, in_channels: int, num_classes: int, size: int = 28) -> nn.Module:
    """A fresh model by name (one of MODELS) for images (in_channels, size, size).
    Chapters build under the run's seed with `run.build(build_model, ...)`."""
    return build(MODELS, name, in_channels, num_classes, size=size)

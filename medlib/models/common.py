"""Pieces every model module shares: the conv-BN-ReLU layer and the registry lookup."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3×3 convolution (same padding, no bias) → BatchNorm → ReLU; stride 2 halves H and W."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def build(registry: dict[str, Callable[..., nn.Module]], name: str, *args, **kwargs) -> nn.Module:
    """`registry[name](*args, **kwargs)`, or a ValueError listing the valid names."""
    if name not in registry:
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(map(repr, registry))}")
    return registry[name](*args, **kwargs)

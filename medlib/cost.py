"""What a model costs: parameters, multiply-accumulates per image, training throughput.
Explained in chapter 01 (the cost table); bench/ compares them across models."""

from __future__ import annotations

import math
import time

import torch
import torch.nn as nn


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass for ONE image (C, H, W) or volume (C, D, H, W),
    counting convolutions, Linear and recurrent layers and attention's matrix products (the rest
    — BN, LayerNorm, ReLU, pooling, softmax, the gates' element-wise products — is small and ignored).

    Conv: output voxels * C_out * (C_in / groups) * prod(kernel);  Linear: in * out;
    RNN/LSTM/GRU: per time step and direction, gates * hidden * (input + hidden), with
    1, 4 and 3 gates; self-attention over T tokens of D numbers: 2 T^2 D (Q K^T and A V).
    """
    total = 0

    def conv_hook(m: nn.Conv2d | nn.Conv3d, inp, out):
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)  # all slices of the one volume

    def rnn_hook(m: nn.RNNBase, inp, out):
        nonlocal total
        x = inp[0]
        steps = x.shape[1] if m.batch_first else x.shape[0]
        gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
        dirs = 2 if m.bidirectional else 1
        for layer in range(m.num_layers):
            n_in = m.input_size if layer == 0 else m.hidden_size * dirs
            total += steps * dirs * gates * m.hidden_size * (n_in + m.hidden_size)

    def linear_hook(m: nn.Linear, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    def matmul_hook(m: nn.Module, inp, out):  # attention's Q K^T and A V (modules that say their cost)
        nonlocal total
        total += m.matmul_macs(inp[0].shape[1])

    hooks = []
    for m in model.modules():
        if hasattr(m, "matmul_macs"):
            hooks.append(m.register_forward_hook(matmul_hook))
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.RNNBase):
            hooks.append(m.register_forward_hook(rnn_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=p.device, dtype=p.dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return int(total)


def train_throughput(model: nn.Module, input_shape: tuple[int, ...], num_classes: int,
                     batch_size: int = 128, steps: int = 4, warmup: int = 1, device="cpu") -> float:
    """Training images per second (forward + backward + AdamW step) on random inputs.
    The model is trained on noise, so pass a copy if its weights matter."""
    device = torch.device(device)
    model = model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch_size, *input_shape, device=device)  # (B, C, H, W)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch_size / (time.perf_counter() - t0)

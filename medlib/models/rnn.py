"""Recurrent networks for volumes read as sequences of slices, and their baselines (chapter 02).

- The three recurrent cells written from their equations, in PyTorch's own layout, so that
  they can be checked against `nn.RNN` / `nn.LSTM` / `nn.GRU` with the same weights:
  `rnn_cell`, `lstm_cell`, `gru_cell`, and `unroll` (one plain loop over time).
  PyTorch stacks the gates of a layer in one matrix, in the order (i, f, g, o) for the LSTM
  and (r, z, n) for the GRU, and keeps two bias vectors, b_ih and b_hh (their sum is what
  matters, except in the GRU's candidate n, where b_hn sits inside r * (...)).
- `SliceRNN`: a small 2D CNN encodes each slice, a (bidirectional) GRU or LSTM reads the
  slice features in order, attention pooling weighs the slices, a linear head classifies
  the volume. It keeps the last batch's attention weights (`last_attention`) for plots.
- Baselines at the same budget: `CentralSlice2D` (the same encoder on the central slice),
  `Orthogonal25D` (the three orthogonal central slices as three channels, "2.5D"),
  `Small3DCNN` (3D convolutions on the whole volume).

All models take volumes x (B, C, D, H, W) and return logits (B, num_classes).
`build_model(name, in_channels, num_classes, size)` builds one from `MODELS`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from medlib.models.common import build, conv_bn_relu

CELL_KINDS = ("rnn", "lstm", "gru")


# ----------------------------------------------------------------------------- cells by hand
def rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). x (B, I), h (B, H)."""
    return torch.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)


def lstm_cell(x, state, w_ih, w_hh, b_ih, b_hh):
    """LSTM: gates i, f, g, o stacked in that order in W_ih (4H, I) and W_hh (4H, H).
    c' = f * c + i * g; h' = o * tanh(c'). state = (h, c), each (B, H)."""
    h, c = state
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """GRU: reset r, update z, candidate n stacked (r, z, n).
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) * n + z * h."""
    xr, xz, xn = (x @ w_ih.T + b_ih).chunk(3, dim=-1)
    hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


CELLS = {"rnn": rnn_cell, "lstm": lstm_cell, "gru": gru_cell}


def layer_weights(module: nn.RNNBase, layer: int = 0, reverse: bool = False) -> tuple[torch.Tensor, ...]:
    """(W_ih, W_hh, b_ih, b_hh) of one layer (and direction) of an nn.RNN / nn.LSTM / nn.GRU."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    return tuple(getattr(module, f"{n}{sfx}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def unroll(kind: str, x: torch.Tensor, weights, state=None):
    """Run a cell over time in one plain loop. x (B, T, I) -> outputs (B, T, H), final state
    (h, or (h, c) for the LSTM). Equal to a one-layer, batch_first PyTorch module."""
    if kind not in CELLS:
        raise ValueError(f"unknown cell {kind!r}; valid choices: {', '.join(map(repr, CELLS))}")
    cell, hidden = CELLS[kind], weights[1].shape[1]
    if state is None:
        zeros = x.new_zeros(x.shape[0], hidden)
        state = (zeros, zeros) if kind == "lstm" else zeros
    outputs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state, *weights)
        outputs.append(state[0] if kind == "lstm" else state)
    return torch.stack(outputs, 1), state


# ----------------------------------------------------------------------------- the slice reader
def slices_along(x: torch.Tensor, axis: int, step: int = 1) -> torch.Tensor:
    """Volumes (B, C, D, H, W) -> slice sequences (B, T, C, h, w) along array `axis` (0, 1, 2),
    keeping every `step`-th slice."""
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2 (an array axis of the volume), got {axis!r}")
    return x.movedim(2 + axis, 1)[:, ::step]


def slabs(seq: torch.Tensor, k: int) -> torch.Tensor:
    """Each slice with its neighbours as channels: (B, T, C, h, w) -> (B, T, k*C, h, w), the
    slices t - k//2 ... t + k//2 (repeating the first/last slice at the ends). k=1: unchanged."""
    if k == 1:
        return seq
    if k < 1 or k % 2 == 0:
        raise ValueError(f"slab must be an odd number of slices >= 1, got {k}")
    t = seq.shape[1]
    idx = (torch.arange(t, device=seq.device)[:, None] + torch.arange(-(k // 2), k // 2 + 1, device=seq.device)).clamp(0, t - 1)
    return seq[:, idx].flatten(2, 3)  # (B, T, k, C, h, w) -> (B, T, k*C, h, w)


def central_slice(x: torch.Tensor, axis: int) -> torch.Tensor:
    """The middle slice along `axis`: (B, C, D, H, W) -> (B, C, h, w)."""
    seq = slices_along(x, axis)
    return seq[:, seq.shape[1] // 2]


class SliceEncoder(nn.Module):
    """A small 2D CNN for one slice: conv-BN-ReLU blocks of `widths` channels and `strides`
    (one more stride-2 block first at >= 64 px), global average pooling.
    (N, C, S, S) -> (N, widths[-1])."""

    def __init__(self, in_channels: int = 1, size: int = 28, widths=(16, 32, 64), strides=(2, 2, 2)):
        super().__init__()
        layers, c = [], in_channels
        if size >= 64:  # 64 px -> 32 px first: the same work per slice as at 28 px
            layers.append(conv_bn_relu(c, widths[0], stride=2))
            c = widths[0]
        for w, st in zip(widths, strides, strict=True):
            layers.append(conv_bn_relu(c, w, stride=st))
            c = w
        self.features = nn.Sequential(*layers)
        self.out_features = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((2, 3))


class AttentionPool(nn.Module):
    """Additive attention over time (Bahdanau-style, as in attention-based MIL, Ilse 2018):
    e_t = v^T tanh(W h_t), a = softmax(e) over t, context = sum_t a_t h_t.
    h (B, T, F) -> (context (B, F), weights (B, T))."""

    def __init__(self, features: int, hidden: int = 32):
        super().__init__()
        self.proj = nn.Linear(features, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.score(torch.tanh(self.proj(h))).squeeze(-1).softmax(dim=1)  # (B, T)
        return (a.unsqueeze(-1) * h).sum(1), a


class SliceRNN(nn.Module):
    """Slice encoder -> GRU/LSTM over the slices -> pooling -> linear head.

    cell: "gru", "lstm" or "rnn"; axis: the array axis read as time; step: every step-th
    slice; slab: each step sees that many neighbouring slices as channels (1: the slice alone);
    pooling: "attention", "mean" or "last" (the final hidden state of each direction).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, size: int = 28, *, cell: str = "gru",
                 bidirectional: bool = True, hidden: int = 32, widths=(16, 32, 64), strides=(2, 2, 2),
                 axis: int = 0, step: int | None = None, slab: int = 1, pooling: str = "attention",
                 dropout: float = 0.2):
        super().__init__()
        if cell not in CELL_KINDS:
            raise ValueError(f"unknown cell {cell!r}; valid choices: {', '.join(map(repr, CELL_KINDS))}")
        if pooling not in ("attention", "mean", "last"):
            raise ValueError(f"unknown pooling {pooling!r}; valid choices: 'attention', 'mean', 'last'")
        self.axis, self.step, self.slab, self.pooling = axis, step or (2 if size >= 64 else 1), slab, pooling
        self.encoder = SliceEncoder(in_channels * slab, size, widths, strides)
        rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(self.encoder.out_features, hidden, batch_first=True, bidirectional=bidirectional)
        out = hidden * (2 if bidirectional else 1)
        self.pool = AttentionPool(out) if pooling == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(out, num_classes)
        self.last_attention: torch.Tensor | None = None

    def slice_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) -> (B, T, F): every kept slice through the 2D encoder at once."""
        seq = slabs(slices_along(x, self.axis), self.slab)[:, ::self.step]  # (B, T, slab*C, h, w)
        b, t = seq.shape[:2]
        return self.encoder(seq.flatten(0, 1)).view(b, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.slice_features(x))  # (B, T, out)
        if self.pooling == "attention":
            z, a = self.pool(h)
            self.last_attention = a.detach()
        elif self.pooling == "mean":
            z = h.mean(1)
        else:  # the last step forwards, and (bidirectional) the first step of the backward pass
            half = self.rnn.hidden_size
            z = torch.cat([h[:, -1, :half], h[:, 0, half:]], 1) if self.rnn.bidirectional else h[:, -1]
        return self.head(self.dropout(z))


# ----------------------------------------------------------------------------- baselines
class CentralSlice2D(nn.Module):
    """The 2D view: the same slice encoder on the central slice along `axis` only."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, size: int = 28, *, axis: int = 0,
                 widths=(16, 32, 64), strides=(2, 2, 2), dropout: float = 0.2):
        super().__init__()
        self.axis = axis
        self.encoder = SliceEncoder(in_channels, size, widths, strides)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.out_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encoder(central_slice(x, self.axis))))


class Orthogonal25D(nn.Module):
    """2.5D: the three orthogonal central slices stacked as channels (cubic volumes)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, size: int = 28, *, widths=(16, 32, 64),
                 strides=(2, 2, 2), dropout: float = 0.2):
        super().__init__()
        self.encoder = SliceEncoder(3 * in_channels, size, widths, strides)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.out_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.shape[2] == x.shape[3] == x.shape[4]:
            raise ValueError(f"Orthogonal25D needs cubic volumes, got {tuple(x.shape[2:])}")
        views = torch.cat([central_slice(x, a) for a in (0, 1, 2)], 1)  # (B, 3C, S, S)
        return self.head(self.dropout(self.encoder(views)))


def conv3d_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm3d(c_out),
                         nn.ReLU(inplace=True))


class Small3DCNN(nn.Module):
    """3D convolutions on the whole volume: stride-2 conv-BN-ReLU blocks (one more at >= 64),
    global average pooling, linear head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, size: int = 28, *, widths=(16, 32, 64),
                 strides=(2, 2, 2), dropout: float = 0.2):
        super().__init__()
        layers, c = [], in_channels
        if size >= 64:
            layers.append(conv3d_bn_relu(c, widths[0], 2))
            c = widths[0]
        for w, st in zip(widths, strides, strict=True):
            layers.append(conv3d_bn_relu(c, w, st))
            c = w
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x).mean((2, 3, 4))))


MODELS = {
    "slicernn": SliceRNN,
    "central2d": CentralSlice2D,
    "orthogonal25d": Orthogonal25D,
    "cnn3d": Small3DCNN,
}


def build_model(name: str, in_channels: int, num_classes: int, size: int = 28, **kwargs) -> nn.Module:
    """A fresh volume classifier by name (one of MODELS); `kwargs` go to its constructor
    (e.g. cell="lstm", bidirectional=False, axis=1, step=2 for the SliceRNN)."""
    return build(MODELS, name, in_channels, num_classes, size=size, **kwargs)

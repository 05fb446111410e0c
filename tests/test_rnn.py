"""Chapter 02: the hand-written recurrent cells against PyTorch's, the volume classifiers at
28³ and 64³, 3D augmentation, the MAC counter for recurrent and 3D layers."""

import pytest
import torch
import torch.nn as nn

from medlib.cost import count_macs
from medlib.data.augment import standard_3d
from medlib.data.batches import TensorLoader
from medlib.data.synthetic import synthetic
from medlib.models.rnn import (
    CELLS,
    MODELS,
    AttentionPool,
    SliceRNN,
    build_model,
    central_slice,
    layer_weights,
    slices_along,
    unroll,
)
from medlib.recipes.classification import train_classifier
from medlib.recipes.volumes import ABLATIONS, build_volume_classifier, recipe

TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_hand_cells_equal_pytorch(kind):
    torch.manual_seed(0)
    module = TORCH[kind](5, 7, batch_first=True, bidirectional=True).double()
    with torch.no_grad():  # non-zero biases, so that both bias vectors are exercised
        for name, p in module.named_parameters():
            if "bias" in name:
                p.uniform_(-0.5, 0.5)
    x = torch.randn(3, 6, 5, dtype=torch.float64)  # (B, T, I)
    out, state = module(x)
    fwd, fwd_state = unroll(kind, x, layer_weights(module))
    bwd, _ = unroll(kind, x.flip(1), layer_weights(module, reverse=True))  # the backward direction
    assert torch.allclose(fwd, out[..., :7], atol=1e-6) and torch.allclose(bwd.flip(1), out[..., 7:], atol=1e-6)
    h_last = fwd_state[0] if kind == "lstm" else fwd_state
    assert torch.allclose(h_last, (state[0] if kind == "lstm" else state)[0], atol=1e-6)
    if kind == "lstm":  # the cell state too
        assert torch.allclose(fwd_state[1], state[1][0], atol=1e-6)


def test_unroll_backpropagates_like_pytorch():
    torch.manual_seed(1)
    gru = nn.GRU(4, 6, batch_first=True).double()
    x = torch.randn(2, 9, 4, dtype=torch.float64)
    gru(x)[0][:, -1].sum().backward()
    ref = [p.grad.clone() for p in layer_weights(gru)]
    gru.zero_grad()
    unroll("gru", x, layer_weights(gru))[0][:, -1].sum().backward()
    for a, b in zip(ref, (p.grad for p in layer_weights(gru))):
        assert torch.allclose(a, b, atol=1e-9)


def test_unknown_cell_is_refused():
    with pytest.raises(ValueError, match="valid choices"):
        unroll("transformer", torch.zeros(1, 2, 3), layer_weights(nn.GRU(3, 4)))
    with pytest.raises(ValueError, match="valid choices"):
        SliceRNN(cell="tcn")
    with pytest.raises(ValueError, match="axis must be"):
        slices_along(torch.zeros(1, 1, 4, 4, 4), 3)


def test_slices_along_each_axis():
    x = torch.arange(2 * 3 * 4 * 5).view(1, 2, 3, 4, 5)  # (B, C, D, H, W)
    assert slices_along(x, 0).shape == (1, 3, 2, 4, 5) and slices_along(x, 2).shape == (1, 5, 2, 3, 4)
    assert torch.equal(slices_along(x, 1)[:, 2], x[:, :, :, 2])
    assert slices_along(x, 0, step=2).shape[1] == 2
    assert torch.equal(central_slice(x, 2), x[..., 2])


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("size", [28, 64])
def test_volume_classifiers_take_28_and_64_cubes(name, size):
    model = build_model(name, 1, 2, size).eval()
    x = torch.randn(2, 1, size, size, size)  # (B, C, D, H, W), one channel
    assert model(x).shape == (2, 2)
    assert count_macs(model, (1, size, size, size)) > 0


def test_slice_rnn_variants_and_attention():
    x = torch.randn(3, 1, 28, 28, 28)
    for kw in ABLATIONS.values():
        model = SliceRNN(1, 3, 28, **kw).eval()
        assert model(x).shape == (3, 3)
    model = SliceRNN(1, 2, 28, step=2).eval()
    model(x)
    a = model.last_attention
    assert a.shape == (3, 14) and torch.allclose(a.sum(1), torch.ones(3))
    assert SliceRNN(1, 2, 64).step == 2  # 64 slices -> 32 read at 64³


def test_attention_pool_is_a_weighted_mean():
    pool = AttentionPool(4)
    h = torch.randn(2, 5, 4)
    z, a = pool(h)
    e = pool.score(torch.tanh(pool.proj(h))).squeeze(-1)
    assert torch.allclose(a, e.softmax(1)) and torch.allclose(z, torch.einsum("bt,btf->bf", a, h))


def test_count_macs_counts_recurrent_and_3d_layers():
    gru = nn.GRU(8, 16, batch_first=True, bidirectional=True)

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = gru

        def forward(self, x):
            return self.rnn(x)[0]

    assert count_macs(Wrap(), (10, 8)) == 10 * 2 * 3 * 16 * (8 + 16)
    conv = nn.Conv3d(1, 4, 3, padding=1)
    assert count_macs(conv, (1, 6, 6, 6)) == 6 ** 3 * 4 * 27


def test_3d_augmentation_keeps_shapes_and_labels():
    data = synthetic("binary-class", n=16, size=12, dim=3)
    plain = TensorLoader(data.train, 8, shuffle=True, seed=3)
    aug = TensorLoader(data.train, 8, shuffle=True, seed=3, augment=standard_3d())
    for (x0, y0), (x1, y1) in zip(plain, aug):
        assert x1.shape == x0.shape and torch.equal(y0, y1) and torch.isfinite(x1).all()
        assert not torch.allclose(x0, x1)  # it did something
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 8, 10, 12)  # not cubic: every axis keeps its length
    assert standard_3d()(x, g).shape == x.shape


def test_a_volume_classifier_learns_synthetic_volumes():
    data = synthetic("binary-class", n=48, size=16, dim=3)
    model = build_volume_classifier("slicernn", data.info, 16, seed=0)
    kw = recipe("standard", data.train, epochs=6)
    kw.update(batch_size=16, lr=1e-2)
    hist = train_classifier(model, data.train, data.val, seed=0, progress=False, **kw)
    assert hist.best_score > 0.9


def test_slabs_stack_neighbouring_slices():
    from medlib.models.rnn import slabs

    seq = torch.arange(5.0).view(1, 5, 1, 1, 1).expand(2, 5, 1, 2, 2)  # slice t holds the value t
    out = slabs(seq, 3)
    assert out.shape == (2, 5, 3, 2, 2)
    assert out[0, 0, :, 0, 0].tolist() == [0, 0, 1] and out[0, 2, :, 0, 0].tolist() == [1, 2, 3]
    assert out[0, 4, :, 0, 0].tolist() == [3, 4, 4] and torch.equal(slabs(seq, 1), seq)
    with pytest.raises(ValueError, match="odd"):
        slabs(seq, 2)
    assert SliceRNN(1, 2, 28, slab=3, step=2).eval()(torch.randn(2, 1, 28, 28, 28)).shape == (2, 2)


def test_count_macs_counts_every_slice_of_a_volume():
    model = SliceRNN(1, 2, 28, slab=1, pooling="mean").eval()
    per_slice = count_macs(model.encoder, (1, 28, 28))
    rnn = 28 * 2 * 3 * 32 * (64 + 32)  # steps x directions x gates x hidden x (input + hidden)
    assert count_macs(model, (1, 28, 28, 28)) == 28 * per_slice + rnn + 64 * 2

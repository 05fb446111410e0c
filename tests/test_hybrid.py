"""Chapter 08's hybrids: shapes at 28 and 64 px (classification) and for any padded size
(segmentation), a tiny batch overfitted by each, the TransUNet bottleneck starting as the
identity (so at initialisation it is its U-Net), and its positions resized for other sizes."""

import pytest
import torch
import torch.nn.functional as F

from medlib.cost import count_parameters
from medlib.models.hybrid import ConvStem, ConvStemViT, TokenBottleneck, TransUNet, conv_stem_vit
from medlib.models.unet import UNet
from medlib.models.vit import vit


@pytest.mark.parametrize("size,channels,grid", [(28, 1, 7), (28, 3, 7), (64, 1, 8)])
def test_conv_stem_vit_shapes(size, channels, grid):
    torch.manual_seed(0)
    m = conv_stem_vit(channels, 5, size)
    assert m.grid == grid and m.patch_embed.grid == grid
    assert m.tokens(torch.randn(2, channels, size, size)).shape == (2, 1 + grid * grid, 96)
    assert m(torch.randn(2, channels, size, size)).shape == (2, 5)
    assert count_parameters(m) < 2 * count_parameters(vit(channels, 5, size))  # comparable to its parent


def test_conv_stem_refuses_a_size_it_cannot_halve():
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvStem(1, 32, 30, stages=2)


def _overfit(model, x, y, loss_fn, steps=60, lr=3e-3):
    opt = torch.optim.AdamW(model.parameters(), lr)
    model.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_conv_stem_vit_overfits_a_tiny_batch():
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 28, 28), torch.tensor([0, 1] * 4)
    m = ConvStemViT(1, 2, 28, drop_path=0.0)
    losses = _overfit(m, x, y, F.cross_entropy)
    assert losses[-1] < 0.05 < losses[0], losses[::10]


def test_transunet_overfits_a_tiny_batch():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 32, 32)
    y = (x.cumsum(-1) > 0).float()  # a mask that needs context along each row
    m = TransUNet(1, 1, width=8, depth=2, dim=32, layers=1, heads=2, base_size=32)
    losses = _overfit(m, x, y, F.binary_cross_entropy_with_logits, steps=80)
    assert losses[-1] < 0.15 < losses[0], losses[::10]


def test_transunet_starts_as_its_unet_and_takes_any_padded_size():
    torch.manual_seed(0)
    t = TransUNet(1, 2, width=8, depth=3, dim=32, layers=2, heads=4, base_size=64).eval()
    u = UNet(1, 2, width=8, depth=3).eval()
    u.load_state_dict({k: v for k, v in t.state_dict().items() if not k.startswith("bottleneck.")})
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(t(x), u(x))  # the bottleneck's output projection starts at zero
        assert t(torch.randn(1, 1, 96, 48)).shape == (1, 2, 96, 48)  # positions resized to a 12 × 6 grid
    with pytest.raises(ValueError, match="divisible by 8"):
        t(torch.randn(1, 1, 60, 64))


def test_token_bottleneck_resizes_its_learned_positions():
    b = TokenBottleneck(16, 32, depth=1, heads=4, grid=4)
    assert b.positions(4, 4) is b.pos
    p = b.positions(8, 2)
    assert p.shape == (1, 32, 8, 2)
    assert torch.allclose(p.mean(), b.pos.mean(), atol=0.02)  # interpolation, not new numbers
    grad = torch.autograd.grad(p.sum(), b.pos)[0]
    assert grad.abs().sum() > 0  # the resized positions still train the base grid

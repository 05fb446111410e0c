"""U-Net variants: shapes, skips, attention gate maps, residual blocks, sliding window."""

import pytest
import torch
from monai.inferers import sliding_window_inference

from medlib.cost import count_parameters as count_params
from medlib.inference import predict_padded, sliding_window, window_starts
from medlib.models.unet import MODELS, AttentionGate, ConvBlock, UNet, build_unet


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("name", list(MODELS))
def test_output_shapes(name):
    m = build_unet(name, in_channels=3, out_channels=2, width=4, depth=2).eval()
    assert m(torch.randn(2, 3, 32, 24)).shape == (2, 2, 32, 24)


@pytest.mark.parametrize("depth", [1, 3])
def test_depth_and_width_change_parameters(depth):
    small, wide = UNet(1, 1, width=4, depth=depth), UNet(1, 1, width=8, depth=depth)
    assert count_params(wide) > 3 * count_params(small)
    assert len(small.down) == depth + 1 and len(small.dec) == depth
    assert small(torch.randn(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_no_skips_changes_decoder_inputs():
    a, b = UNet(1, 1, width=4, depth=2), UNet(1, 1, width=4, depth=2, skips=False)
    assert a.dec[0].body[0][0].in_channels == 2 * b.dec[0].body[0][0].in_channels
    assert count_params(b) < count_params(a)


def test_attention_gate_maps():
    m = build_unet("attention_unet", width=4, depth=3).eval()
    m(torch.randn(2, 1, 32, 32))
    maps = m.gate_maps
    assert [tuple(g.shape) for g in maps] == [(2, 1, 8, 8), (2, 1, 16, 16), (2, 1, 32, 32)]
    assert all(((g >= 0) & (g <= 1)).all() for g in maps)
    with pytest.raises(ValueError, match="skip"):
        UNet(attention=True, skips=False)


def test_attention_gate_by_hand():
    torch.manual_seed(0)
    gate = AttentionGate(4, 4, 2)
    x, g = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    conv = torch.nn.functional.conv2d
    a = torch.sigmoid(conv(torch.relu(conv(x, gate.w_x.weight) + conv(g, gate.w_g.weight, gate.w_g.bias)),
                           gate.psi.weight, gate.psi.bias))
    assert torch.allclose(gate(x, g), x * a, atol=1e-6)


def test_residual_block_adds_shortcut():
    blk = ConvBlock(3, 5, residual=True).eval()
    x = torch.randn(1, 3, 8, 8)
    assert torch.allclose(blk(x), blk.body(x) + blk.shortcut(x))
    assert ConvBlock(5, 5, residual=True).shortcut.__class__.__name__ == "Identity"


def test_bad_size_and_name_are_clear_errors():
    with pytest.raises(ValueError, match="divisible by 8"):
        UNet(depth=3)(torch.randn(1, 1, 20, 20))
    with pytest.raises(ValueError, match="valid choices"):
        build_unet("segformer")


def test_predict_padded_handles_odd_sizes():
    m = UNet(1, 1, width=4, depth=3).eval()
    with torch.no_grad():
        assert predict_padded(m, torch.randn(1, 1, 37, 29), multiple=8).shape == (1, 1, 37, 29)


def test_window_starts_cover_everything():
    for size, win, ov in [(100, 32, 0.25), (565, 128, 0.5), (32, 32, 0.5), (20, 32, 0.0)]:
        starts = window_starts(size, win, ov)
        covered = torch.zeros(max(size, win), dtype=torch.bool)
        for s in starts:
            covered[s : s + win] = True
        assert covered[:size].all() and starts[-1] + win >= size


@pytest.mark.parametrize("shape,window,overlap", [((2, 1, 70, 53), 32, 0.25), ((1, 1, 40, 40), 16, 0.5), ((1, 1, 20, 28), 32, 0.25)])
def test_sliding_window_matches_monai(shape, window, overlap):
    torch.manual_seed(0)
    m = UNet(1, 2, width=4, depth=2).eval()
    x = torch.randn(*shape)
    ours = sliding_window(m, x, window, overlap, batch_size=4)
    with torch.no_grad():
        ref = sliding_window_inference(x, (window, window), 4, m, overlap=overlap, mode="constant")
    assert ours.shape == (shape[0], 2, *shape[2:])
    assert torch.allclose(ours, ref, atol=1e-5)


def test_sliding_window_equals_model_on_one_window():
    m = UNet(1, 1, width=4, depth=2).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(sliding_window(m, x, 32), m(x), atol=1e-6)


def test_predict_probs_tta_is_flip_average():
    from medlib.data.segmentation import SegDataset, SegSplit
    from medlib.inference import predict_probs

    torch.manual_seed(0)
    imgs = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8)
    split = SegSplit(imgs, torch.zeros(3, 16, 16, dtype=torch.uint8), ["a", "b", "c"])
    ds = SegDataset("t", split, split, split, 2, [0.5], [0.25])
    m = UNet(1, 1, width=4, depth=2).eval()
    x = ds.normalize(imgs)
    with torch.no_grad():
        ref = (torch.sigmoid(m(x)) + torch.sigmoid(m(x.flip(-1))).flip(-1) + torch.sigmoid(m(x.flip(-2))).flip(-2)) / 3
    assert torch.allclose(predict_probs(m, ds, split, "cpu", tta=True, multiple=4), ref[:, 0], atol=1e-6)
    assert torch.allclose(predict_probs(m, ds, split, "cpu", multiple=4), torch.sigmoid(m(x))[:, 0].detach(), atol=1e-6)

"""Chapter 07: the ViT's blocks against PyTorch's own with the same weights, shapes at 28 and
64 px with 1 and 3 channels, attention rollout's invariants, the cost counter's attention term,
and weight decay sparing norms and embeddings."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from medlib.cost import count_macs, count_parameters
from medlib.models.vit import (
    Block,
    MultiHeadSelfAttention,
    PatchEmbed,
    ViT,
    attention_maps,
    cls_map,
    rollout,
    vit,
)
from medlib.train import make_optimizer


def _attention_by_hand(x, mha: MultiHeadSelfAttention):
    b, t, d = x.shape
    h = mha.heads
    q, k, v = mha.qkv(x).chunk(3, dim=-1)
    split = lambda z: z.view(b, t, h, d // h).transpose(1, 2)  # noqa: E731
    a = torch.softmax(split(q) @ split(k).transpose(-2, -1) / math.sqrt(d // h), -1)
    return mha.proj((a @ split(v)).transpose(1, 2).reshape(b, t, d))


def test_attention_matches_pytorch_both_paths():
    torch.manual_seed(0)
    x = torch.randn(3, 17, 32)
    mine = MultiHeadSelfAttention(32, 4).eval()
    ref = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(mine.qkv.weight)
        ref.in_proj_bias.copy_(mine.qkv.bias)
        ref.out_proj.weight.copy_(mine.proj.weight)
        ref.out_proj.bias.copy_(mine.proj.bias)
    expected, weights = ref(x, x, x, need_weights=True, average_attn_weights=False)
    fast = mine(x)  # F.scaled_dot_product_attention
    mine.keep_attention = True
    explicit = mine(x)  # softmax written out
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(explicit, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_attention_by_hand(x, mine), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mine.attention, weights, atol=1e-5, rtol=1e-5)
    q = torch.randn(2, 4, 9, 8)
    torch.testing.assert_close(torch.softmax(q @ q.transpose(-2, -1) / math.sqrt(8), -1) @ q,
                               F.scaled_dot_product_attention(q, q, q), atol=1e-5, rtol=1e-5)


def test_block_matches_transformer_encoder_layer():
    torch.manual_seed(1)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True).eval()
    block = Block(32, 4, mlp_ratio=2.0).load_from_torch_layer(layer).eval()
    x = torch.randn(2, 10, 32)
    torch.testing.assert_close(block(x), layer(x), atol=1e-5, rtol=1e-5)


def test_patch_embedding_is_a_linear_map_of_flattened_patches():
    torch.manual_seed(2)
    pe = PatchEmbed(3, 16, 4, 28)
    x = torch.randn(2, 3, 28, 28)
    patches = x.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, C, 7, 7, 4, 4)
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 49, 3 * 16)  # row by row, (C, p, p) per patch
    torch.testing.assert_close(pe(x), flat @ pe.proj.weight.flatten(1).T + pe.proj.bias, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="divide"):
        PatchEmbed(1, 16, 5, 28)


@pytest.mark.parametrize("size,channels", [(28, 1), (28, 3), (64, 1), (64, 3)])
def test_shapes(size, channels):
    model = vit(channels, 5, size, dim=32, depth=2, heads=2)
    x = torch.randn(2, channels, size, size)
    assert model(x).shape == (2, 5)
    maps = attention_maps(model, x)
    tokens = 1 + model.grid ** 2
    assert len(maps) == 2 and maps[0].shape == (2, 2, tokens, tokens)
    assert cls_map(model, x).shape == (2, model.grid, model.grid)
    assert model.grid == (7 if size == 28 else 8)


def test_rollout_rows_sum_to_one_and_uniform_attention_gives_uniform_rollout():
    torch.manual_seed(3)
    att = [torch.softmax(torch.randn(2, 3, 6, 6), -1) for _ in range(4)]
    for fusion in ("mean", "max"):
        r = rollout(att, head_fusion=fusion)
        torch.testing.assert_close(r.sum(-1), torch.ones(2, 6))
    uniform = [torch.full((1, 2, 6, 6), 1 / 6) for _ in range(3)]
    for residual in (0.0, 0.5):
        r = rollout(uniform, residual=residual)
        if residual == 0.0:
            torch.testing.assert_close(r, torch.full((1, 6, 6), 1 / 6))
        torch.testing.assert_close(r[:, 0, 1:], r[:, 0, 1:].mean().expand(1, 5))  # no patch favoured
    # one layer, no residual: rollout is the (head-averaged) attention itself
    torch.testing.assert_close(rollout(att[:1], residual=0.0), att[0].mean(1))


def test_model_with_forced_uniform_attention_gives_uniform_maps():
    model = vit(1, 2, 28, dim=32, depth=3, heads=2)
    with torch.no_grad():  # zero queries and keys: every score is 0, so softmax is uniform
        for b in model.blocks:
            b.attn.qkv.weight[:64].zero_()
            b.attn.qkv.bias[:64].zero_()
    m = cls_map(model, torch.randn(2, 1, 28, 28))
    torch.testing.assert_close(m, torch.full_like(m, 1 / 49))


def test_attention_maps_leave_the_model_as_it_was():
    model = vit(1, 2, 28, dim=32, depth=2, heads=2).train()
    attention_maps(model, torch.randn(1, 1, 28, 28))
    assert model.training and all(not b.attn.keep_attention and b.attn.attention is None for b in model.blocks)


def test_cost_counts_attention_and_default_size():
    model = ViT(1, 2, 28, patch=4, dim=128, depth=6, heads=4)
    assert count_parameters(model) < 1_000_000
    t, d = 50, 128
    linear = 6 * t * (3 * d * d + d * d + 2 * 2 * d * d)  # qkv, proj, MLP (ratio 2) per block
    expected = 49 * 16 * d + linear + 6 * 2 * t * t * d + d * 2  # patch conv, blocks, attention, head
    assert count_macs(model, (1, 28, 28)) == expected


def test_weight_decay_spares_norms_biases_and_embeddings():
    model = vit(1, 2, 28, dim=32, depth=1, heads=2)
    opt = make_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05)
    decayed, spared = opt.param_groups
    assert decayed["weight_decay"] == 0.05 and spared["weight_decay"] == 0.0
    ids = {id(p) for p in spared["params"]}
    assert id(model.pos_embed) in ids and id(model.cls_token) in ids and id(model.norm.weight) in ids
    assert id(model.head.weight) not in ids
    assert len(decayed["params"]) + len(spared["params"]) == len(list(model.parameters()))


def test_recipe_ingredients_leave_out_what_they_name():
    from medlib.data.synthetic import synthetic
    from medlib.recipes import vit as rv

    d = synthetic("binary-class", n=64)
    full = rv.training_kwargs(d.train, 10)
    assert full["augment"] is not None and full["label_smoothing"] > 0 and full["weight_decay"] > 0
    assert full["schedule"] == "cosine" and full["warmup_epochs"] > 0 and rv.model_kwargs()["drop_path"] > 0
    bare = rv.training_kwargs(d.train, 10, rv.INGREDIENTS)
    assert bare["augment"] is None and bare["label_smoothing"] == 0 and bare["weight_decay"] == 0
    assert bare["schedule"] == "constant" and bare["warmup_epochs"] == 0
    assert rv.model_kwargs(rv.INGREDIENTS)["drop_path"] == 0
    assert {k: v for k, v in full.items() if k != "augment"} == {
        k: v for k, v in rv.training_kwargs(d.train, 10, ("augmentation",)).items() if k != "augment"}
    with pytest.raises(ValueError, match="unknown ingredient"):
        rv.training_kwargs(d.train, 10, ("dropout",))
    assert rv.patch_sizes(28, "standard") == (7, 4, 2) and rv.patch_sizes(64, "standard") == (16, 8, 4)
    assert rv.patch_for(28) == rv.STANDARD["patch"] and rv.patch_for(64) == 8
    assert [rv.batch_for(n) for n in (4708, 2354, 1177, 471)] == [128, 64, 32, 32]  # >= 30 updates per epoch
    assert rv.cnn_kwargs(d.train, 3)["batch_size"] == rv.batch_for(len(d.train))


def test_chapter_refuses_a_patch_that_does_not_divide_the_size():
    from medlib.chapters import check

    defaults = {"profile": None, "dataset": "pneumoniamnist", "size": 28, "patch_size": None, "epochs": None,
                "seed": 0, "device": "auto", "reuse": False}
    check("07_vit", {"patch_size": 7}, defaults)
    with pytest.raises(ValueError, match="does not divide size 28"):
        check("07_vit", {"patch_size": 8}, defaults)

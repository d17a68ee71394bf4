"""The reference position module against timm: 2D sin-cos embeddings and grid interpolation."""

import pytest
import torch
from timm.layers import resample_abs_pos_embed
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed

from vitcourse.models.position import (
    interpolate_pos_embed,
    pool,
    shuffle_patches,
    sincos_1d,
    sincos_2d,
    unshuffle_patches,
)
from vitcourse.models.vit import ViT


@pytest.mark.parametrize("dim, grid", [(64, (14, 14)), (384, (6, 8)), (32, (3, 5))])
def test_sincos_2d_matches_timm_up_to_channel_order(dim, grid):
    """timm lays channels out as [sin(row), sin(col), cos(row), cos(col)]; MAE (ours) as
    [sin(col), cos(col), sin(row), cos(row)]. Same numbers, same token order."""
    ours = sincos_2d(dim, grid)
    q = dim // 4
    sin_row, sin_col, cos_row, cos_col = build_sincos2d_pos_embed(list(grid), dim).split(q, dim=1)
    theirs = torch.cat([sin_col, cos_col, sin_row, cos_row], dim=1)
    assert ours.shape == (grid[0] * grid[1], dim)
    assert (ours - theirs).abs().max() <= 1e-5


def test_sincos_2d_prefix_rows_are_zero_and_rows_are_distinct():
    emb = sincos_2d(64, 7, num_prefix_tokens=2)
    assert emb.shape == (2 + 49, 64)
    assert emb[:2].abs().max() == 0
    assert torch.cdist(emb[2:], emb[2:]).add(torch.eye(49)).min() > 1e-3  # no two positions alike
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(30, 7)
    with pytest.raises(ValueError, match="even"):
        sincos_1d(7, torch.arange(3))


@pytest.mark.parametrize("old, new, prefix", [
    ((14, 14), (24, 24), 1),   # 224 -> 384 px at patch 16
    ((14, 14), (6, 6), 1),     # a 96 px DINO crop
    ((14, 14), (6, 8), 1),     # non-square
    ((8, 8), (12, 10), 0),     # no class token
    ((7, 7), (10, 10), 5),     # class token + 4 registers
])
def test_interpolate_pos_embed_matches_timm(old, new, prefix):
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(1, prefix + old[0] * old[1], 48, generator=g)
    ours = interpolate_pos_embed(pos, old, new, num_prefix_tokens=prefix)
    theirs = resample_abs_pos_embed(pos, list(new), list(old), num_prefix_tokens=prefix)
    assert ours.shape == (1, prefix + new[0] * new[1], 48)
    assert (ours - theirs).abs().max() <= 1e-5
    assert torch.equal(ours[:, :prefix], pos[:, :prefix])


def test_interpolate_pos_embed_same_grid_and_bad_shape():
    pos = torch.randn(1, 1 + 16, 8)
    assert interpolate_pos_embed(pos, 4, 4) is pos
    with pytest.raises(ValueError, match="4x5 grid"):
        interpolate_pos_embed(pos, (4, 5), (8, 8))


def test_pool_modes():
    tokens = torch.randn(2, 1 + 4 + 9, 6)  # CLS, 4 registers, 9 patches
    assert torch.equal(pool(tokens, "token", num_prefix_tokens=5), tokens[:, 0])
    assert torch.allclose(pool(tokens, "avg", num_prefix_tokens=5), tokens[:, 5:].mean(1))
    with pytest.raises(ValueError, match="class token"):
        pool(tokens, "token", num_prefix_tokens=0)
    with pytest.raises(ValueError, match="global_pool"):
        pool(tokens, "max")


@pytest.mark.parametrize("global_pool", ["token", "avg"])
def test_the_loss_trains_only_the_pooled_outputs_of_the_last_block(global_pool):
    """book/02-position: with "avg" the last block's class-token output gets no gradient, with "token" its
    patch outputs get none; the other kind gets one."""
    torch.manual_seed(0)
    vit = ViT(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10, global_pool=global_pool)
    captured = {}

    def keep(module, inputs, out):
        out.retain_grad()
        captured["out"] = out

    vit.blocks[-1].register_forward_hook(keep)
    (vit(torch.rand(4, 3, 32, 32)) * torch.randn(4, 10)).sum().backward()
    grad = captured["out"].grad
    cls_zero, patches_zero = bool((grad[:, 0] == 0).all()), bool((grad[:, 1:] == 0).all())
    assert (cls_zero, patches_zero) == ((False, True) if global_pool == "token" else (True, False))


@pytest.mark.parametrize("perm_shape", ["shared", "per image"])
def test_shuffle_and_unshuffle_patches(perm_shape):
    torch.manual_seed(0)
    tokens = torch.randn(3, 2 + 5, 4)
    perm = torch.randperm(5) if perm_shape == "shared" else torch.stack([torch.randperm(5) for _ in range(3)])
    shuffled = shuffle_patches(tokens, perm, num_prefix_tokens=2)
    assert torch.equal(shuffled[:, :2], tokens[:, :2])
    for b in range(3):
        p = perm if perm.ndim == 1 else perm[b]
        assert torch.equal(shuffled[b, 2:], tokens[b, 2:][p])
    assert torch.equal(unshuffle_patches(shuffled, perm, num_prefix_tokens=2), tokens)

"""Chapter 8: vitcourse.models.registers (artifact detection, token splitting) and the register
options of the course ViT (token order, counts, pooling, timm equivalence)."""

import pytest
import torch
from torch import nn

from vitcourse.models.registers import find_artifact_tokens, robust_threshold, split_tokens, token_norms
from vitcourse.models.vit import add_prefix_tokens


@pytest.mark.parametrize("D", [4, 16, 64, 384])
@pytest.mark.parametrize("seed", range(3))
def test_clean_gaussian_features_give_no_flags(D, seed):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(32, 256, D, generator=g) * 0.7 + 0.1
    assert find_artifact_tokens(feats).sum() == 0


@pytest.mark.parametrize("seed", range(5))
def test_planted_high_norm_tokens_are_found_exactly(seed):
    g = torch.Generator().manual_seed(seed)
    B, N, D = 8, 196, 64
    feats = torch.randn(B, N, D, generator=g)
    planted = torch.zeros(B, N, dtype=torch.bool)
    idx = torch.randint(0, N, (B, 3), generator=g)
    planted[torch.arange(B)[:, None], idx] = True
    feats[planted] *= 4.0  # about 4x the typical norm, DINOv2's artifacts stand out at least as much
    mask = find_artifact_tokens(feats)
    assert mask.dtype == torch.bool and mask.shape == (B, N)
    assert torch.equal(mask, planted)
    assert torch.equal(find_artifact_tokens(token_norms(feats)), planted)  # norms work as input too


def test_explicit_threshold_and_rule():
    norms = torch.tensor([[1.0, 2.0, 3.0, 4.0, 100.0]])
    assert find_artifact_tokens(norms, threshold=2.5).tolist() == [[False, False, True, True, True]]
    # median 3, absolute deviations (2, 1, 0, 1, 97) -> MAD 1 -> threshold 3 + 6 * 1.4826
    assert abs(robust_threshold(norms) - (3 + 6 * 1.4826)) < 1e-5
    assert find_artifact_tokens(norms).tolist() == [[False, False, False, False, True]]
    with pytest.raises(ValueError, match=r"\(B, N, D\)"):
        find_artifact_tokens(torch.zeros(5))


def test_split_tokens_order():
    t = torch.arange(1 + 4 + 9).float().reshape(1, -1, 1)
    cls, regs, patches = split_tokens(t, 4)
    assert cls.item() == 0 and regs.flatten().tolist() == [1, 2, 3, 4] and patches.shape == (1, 9, 1)


def _vit(**kw):
    from vitcourse.models.vit import digits_vit

    torch.manual_seed(0)
    return digits_vit(num_classes=5, embed_dim=32, depth=2, num_heads=2, **kw)


@pytest.mark.parametrize("R", [0, 1, 4])
def test_register_shapes_and_counts(R):
    from vitcourse.models.patches import num_tokens

    m = _vit(num_registers=R, no_embed_class=True)
    assert m.num_prefix_tokens == 1 + R
    feats = m.forward_features(torch.randn(3, 1, 16, 16))
    assert feats.shape == (3, num_tokens(16, 16, 4, num_registers=R), 32)
    assert m.pos_embed.shape[1] == 16  # timm's DINOv2 layout: position embeddings for the patches only
    if R:
        assert m.reg_token.shape == (1, R, 32)
    assert m(torch.randn(3, 1, 16, 16)).shape == (3, 5)


@pytest.mark.parametrize("no_embed_class", [True, False])
def test_token_order_cls_registers_patches(no_embed_class):
    m = _vit(num_registers=4, no_embed_class=no_embed_class)
    with torch.no_grad():
        m.pos_embed.normal_()
        m.reg_token.normal_()
        m.cls_token.normal_()
    m.blocks = nn.Sequential()  # no blocks and no final norm: forward_features shows the input sequence
    m.norm = nn.Identity()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        tokens = m.forward_features(x)
        patches = m.patch_embed(x)
    cls, regs, pat = split_tokens(tokens, 4)
    pe = m.pos_embed
    if no_embed_class:
        torch.testing.assert_close(cls, m.cls_token[:, 0].expand(2, -1))
        torch.testing.assert_close(regs, m.reg_token.expand(2, -1, -1))
        torch.testing.assert_close(pat, patches + pe)
    else:  # timm's default: the position embedding covers the prefix tokens, registers included
        assert pe.shape[1] == 16 + 1 + 4
        torch.testing.assert_close(cls, (m.cls_token + pe[:, :1])[:, 0].expand(2, -1))
        torch.testing.assert_close(regs, (m.reg_token + pe[:, 1:5]).expand(2, -1, -1))
        torch.testing.assert_close(pat, patches + pe[:, 5:])


def test_registers_get_gradients():
    m = _vit(num_registers=4, no_embed_class=True)
    m(torch.randn(2, 1, 16, 16)).sum().backward()
    assert m.reg_token.grad is not None and m.reg_token.grad.abs().sum() > 0


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_registers_are_dropped_from_the_pooled_output(pool):
    m = _vit(num_registers=4, no_embed_class=True, global_pool=pool).eval()
    feats = m.forward_features(torch.randn(2, 1, 16, 16))
    changed = feats.clone()
    changed[:, 1:5] += 100.0  # whatever the registers hold, the head must not see it
    with torch.no_grad():
        torch.testing.assert_close(m.forward_head(changed), m.forward_head(feats))
    if pool == "avg":  # the mean is over patches only
        fc_norm = getattr(m, "fc_norm", nn.Identity())  # timm and the course normalise after mean pooling
        torch.testing.assert_close(m.forward_head(feats), m.head(fc_norm(feats[:, 5:].mean(1))), rtol=1e-5, atol=1e-6)


def test_matches_timm_reg4_dinov2_at_224():
    import timm

    from vitcourse import convert

    torch.manual_seed(0)
    ref = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, img_size=224, num_classes=10).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ours = convert.from_timm(ref).eval()
    assert ours.num_prefix_tokens == 5
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.forward_features(x), ref.forward_features(x), rtol=0, atol=1e-4)


def test_add_prefix_tokens_orders_prefix_and_places_position_embeddings():
    B, N, D = 2, 5, 3
    patches = torch.randn(B, N, D)
    cls, dist, reg = torch.randn(1, 1, D), torch.randn(1, 1, D), torch.randn(1, 4, D)
    full = torch.randn(1, 6 + N, D)
    out = add_prefix_tokens(patches, full, cls_token=cls, dist_token=dist, reg_token=reg)
    want = torch.cat([cls.expand(B, -1, -1), dist.expand(B, -1, -1), reg.expand(B, -1, -1), patches], 1) + full
    torch.testing.assert_close(out, want)
    on_patches = torch.randn(1, N, D)  # DINOv2: the prefix tokens get no position
    out = add_prefix_tokens(patches, on_patches, cls_token=cls, reg_token=reg, no_embed_class=True)
    torch.testing.assert_close(out, torch.cat([cls.expand(B, -1, -1), reg.expand(B, -1, -1), patches + on_patches], 1))
    torch.testing.assert_close(add_prefix_tokens(patches, on_patches), patches + on_patches)  # no prefix at all


def test_attention_shares_split_the_class_token_row():
    torch.manual_seed(0)
    from vitcourse.models.registers import attention_shares

    attn = torch.randn(3, 2, 1 + 4 + 6, 1 + 4 + 6).softmax(dim=-1)
    ink = torch.rand(3, 6) < 0.5
    shares = attention_shares(attn, 4, ink)
    assert shares.shape == (3, 4)
    assert torch.allclose(shares.sum(-1), torch.ones(3))
    row = attn.mean(1)[:, 0]
    assert torch.allclose(shares[:, 1], row[:, 1:5].sum(-1))
    assert torch.allclose(shares[:, 2], (row[:, 5:] * ink).sum(-1))
    assert torch.equal(attention_shares(attn[..., :7, :7].softmax(-1), 0, ink)[:, 1], torch.zeros(3))

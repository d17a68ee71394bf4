"""vitcourse.analysis: artifact detection, token splitting, attention maps and block outputs."""

import pytest
import torch
from torch import nn

from vitcourse.analysis import (
    attention_maps,
    block_tokens,
    cls_attention,
    find_artifact_tokens,
    robust_threshold,
    split_tokens,
    token_norms,
)
from vitcourse.convert import from_timm
from vitcourse.models.vit import digits_vit


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


def test_attention_maps_of_timm_equal_its_own_attention():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    m = VisionTransformer(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=32, depth=2, num_heads=2,
                          reg_tokens=4, no_embed_class=True).eval()
    a = attention_maps(m, torch.randn(2, 1, 16, 16), [-1])[0]
    assert a.shape == (2, 2, 21, 21)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 2, 21))
    # same as timm's own (unfused) attention, captured from its attn_drop input
    got = {}
    blk = m.blocks[-1].attn
    blk.fused_attn = False
    h = blk.attn_drop.register_forward_hook(lambda mod, i, o: got.__setitem__("a", o))
    with torch.no_grad():
        m(torch.randn(2, 1, 16, 16) * 0 + 1)
    h.remove()
    torch.testing.assert_close(attention_maps(m, torch.ones(2, 1, 16, 16))[-1], got["a"])


def test_attention_maps_of_the_course_vit_equal_timms_after_conversion():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(1)
    theirs = VisionTransformer(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=32, depth=3,
                               num_heads=4, reg_tokens=2, no_embed_class=True).eval()
    ours = from_timm(theirs).eval()
    x = torch.randn(2, 1, 16, 16)
    maps, ref = attention_maps(ours, x), attention_maps(theirs, x)
    assert len(maps) == 3 and all(a.shape == (2, 4, 19, 19) for a in maps)
    for a, b in zip(maps, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert [a.shape for a in attention_maps(ours, x, [0, -1])] == [maps[0].shape, maps[2].shape]
    torch.testing.assert_close(attention_maps(ours, x, [-1])[0], maps[2])


def test_cls_attention_is_the_class_row_over_the_patch_grid():
    torch.manual_seed(0)
    model = digits_vit(embed_dim=32, depth=2, num_heads=2, num_registers=3).eval()
    x = torch.rand(2, 1, 16, 12)  # not square: a 4 x 3 grid
    grid = cls_attention(model, x, block=0)
    assert grid.shape == (2, 2, 4, 3)
    full = attention_maps(model, x, [0])[0]
    torch.testing.assert_close(grid.flatten(2), full[:, :, 0, 4:])  # class token's row, prefix tokens left out


def test_block_tokens_are_the_input_of_the_final_norm():
    torch.manual_seed(0)
    model = digits_vit(embed_dim=32, depth=2, num_heads=2).eval()
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.norm(block_tokens(model, x)), model.forward_features(x))
        first = model.blocks[0](model._pos_embed(model.patch_embed(x), (4, 4)))
    torch.testing.assert_close(block_tokens(model, x, block=0), first)

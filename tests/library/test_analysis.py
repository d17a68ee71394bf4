"""vitcourse.analysis: attention maps of any ViT, and the tokens leaving a block."""

import pytest
import torch

from vitcourse.analysis import attention_maps, block_tokens, cls_attention
from vitcourse.convert import from_timm
from vitcourse.models.vit import digits_vit


@pytest.mark.chapter("03-vit", "08-registers")
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


@pytest.mark.chapter("03-vit", "08-registers")
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


@pytest.mark.chapter("03-vit", "05-dino")
def test_cls_attention_is_the_class_row_over_the_patch_grid():
    torch.manual_seed(0)
    model = digits_vit(embed_dim=32, depth=2, num_heads=2, num_registers=3).eval()
    x = torch.rand(2, 1, 16, 12)  # not square: a 4 x 3 grid
    grid = cls_attention(model, x, block=0)
    assert grid.shape == (2, 2, 4, 3)
    full = attention_maps(model, x, [0])[0]
    torch.testing.assert_close(grid.flatten(2), full[:, :, 0, 4:])  # class token's row, prefix tokens left out


@pytest.mark.chapter("08-registers")
def test_block_tokens_are_the_input_of_the_final_norm():
    torch.manual_seed(0)
    model = digits_vit(embed_dim=32, depth=2, num_heads=2).eval()
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.norm(block_tokens(model, x)), model.forward_features(x))
        first = model.blocks[0](model._pos_embed(model.patch_embed(x), (4, 4)))
    torch.testing.assert_close(block_tokens(model, x, block=0), first)

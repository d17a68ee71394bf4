"""vitcourse.models.swin: equal to timm's and torchvision's Swin-T, and the window mechanics."""

import pytest
import timm
import torch
import torchvision

from vitcourse.convert import from_timm, from_torchvision, perturb
from vitcourse.models.swin import (
    SwinBlock,
    SwinTransformer,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)


@pytest.mark.parametrize("source,convert", [
    (lambda: timm.create_model("swin_tiny_patch4_window7_224", pretrained=False), from_timm),
    (lambda: torchvision.models.swin_t(weights=None), from_torchvision),
], ids=["timm", "torchvision"])
def test_swin_t_matches(source, convert):
    model = perturb(source())
    ours = convert(model).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x) - model(x)).abs().max().item()
    assert diff <= 1e-5, f"max abs logit difference {diff:.2e}"


def test_window_round_trip_and_order():
    x = torch.randn(2, 14, 21, 3)
    w = window_partition(x, 7)
    assert w.shape == (2 * 2 * 3, 7, 7, 3)
    assert torch.equal(w[1], x[0, :7, 7:14])  # second window of the first image: top row, middle
    assert torch.equal(window_reverse(w, 7, 14, 21), x)


def test_relative_position_index_formula():
    M = 3
    idx = relative_position_index(M)
    for i in range(M * M):
        for j in range(M * M):
            dy, dx = i // M - j // M, i % M - j % M
            assert idx[i, j] == (dy + M - 1) * (2 * M - 1) + (dx + M - 1)


def test_mask_blocks_exactly_cross_region_pairs():
    H, W, M, s = 14, 14, 7, 3
    rows = torch.arange(H)[:, None].expand(H, W)
    cols = torch.arange(W)[None, :].expand(H, W)
    # The region of each pixel of the ORIGINAL image, as seen after rolling by -s.
    band = lambda v, n: (v >= n - M).long() + (v >= n - s).long()
    region = (band(rows, H) * 3 + band(cols, W))[None, ..., None].float()
    labels = window_partition(region, M).reshape(-1, M * M)
    expected = (labels[:, :, None] != labels[:, None, :]).float() * -100
    assert torch.equal(shifted_window_mask(H, W, M, s), expected)


def _cross_window_gradient(shift):
    torch.manual_seed(0)
    block = SwinBlock(8, 2, window_size=4, shift_size=shift).eval()
    x = torch.randn(1, 8, 8, 8, requires_grad=True)
    block(x)[0, 0, 0].sum().backward()  # output at a token of the top-left window
    grad = x.grad[0].abs().sum(-1)
    return grad[4:, 4:].sum().item()  # input in the bottom-right window


def test_no_information_crosses_windows_without_shift():
    assert _cross_window_gradient(0) == 0.0


def test_shifted_block_mixes_windows():
    torch.manual_seed(0)
    block = SwinBlock(8, 2, window_size=4, shift_size=2).eval()
    x = torch.randn(1, 8, 8, 8, requires_grad=True)
    block(x)[0, 3, 3].sum().backward()  # a token at the corner of the top-left window
    assert x.grad[0, 4:6, 4:6].abs().sum() > 0


@pytest.mark.parametrize("H,W", [(224, 224), (224, 448)])
def test_pyramid_shapes(H, W):
    with torch.device("meta"):
        model = SwinTransformer(num_classes=0)
        maps = model.forward_pyramid(torch.empty(1, 3, H, W))
    assert [tuple(m.shape) for m in maps] == [(1, H // s, W // s, 96 * 2**i) for i, s in enumerate((4, 8, 16, 32))]


def test_bad_size_is_named():
    model = SwinTransformer(num_classes=0)
    with pytest.raises(ValueError, match=r"230x224.*multiples of 224.*resize.*pad"):
        model(torch.zeros(1, 3, 230, 224))


def test_shifted_blocks_keep_their_mask_as_a_buffer_like_timm():
    model = SwinTransformer(img_size=64, patch_size=4, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=4,
                            num_classes=5)
    shifted = model.stages[0][1]
    assert shifted.shift_size == 2 and shifted.attn_mask.shape == (16, 16, 16)  # 16x16 grid: 16 windows of 4x4
    torch.testing.assert_close(shifted.attn_mask, shifted_window_mask(16, 16, 4, 2))
    assert model.stages[0][0].attn_mask is None  # no shift, no mask
    assert not any(k.endswith("attn_mask") for k in model.state_dict())  # not saved, as in timm
    assert dict(model.named_buffers())["stages.0.1.attn_mask"] is shifted.attn_mask
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        out = model(x)
        for block in (b for stage in model.stages for b in stage):
            block.attn_mask = None  # computed in forward instead: the same result
        torch.testing.assert_close(model(x), out)
        assert model(torch.randn(1, 3, 96, 96)).shape == (1, 5)  # another size: masks computed for it


@pytest.mark.parametrize("H,W", [(6, 8), (7, 9), (5, 4), (1, 1)])
def test_patch_merging_matches_timm_and_torchvision_on_any_size(H, W):
    """Odd maps are padded with zeros after their last row or column, as both libraries do."""
    from timm.models.swin_transformer import PatchMerging as TimmMerging
    from torchvision.models.swin_transformer import PatchMerging as TorchvisionMerging

    from vitcourse.models.swin import PatchMerging

    g = torch.Generator().manual_seed(0)
    ours = PatchMerging(6)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(2, H, W, 6, generator=g)
    for theirs in (TimmMerging(6), TorchvisionMerging(6)):
        theirs.load_state_dict(ours.state_dict())
        with torch.no_grad():
            assert ours(x).shape == (2, (H + 1) // 2, (W + 1) // 2, 12)
            assert (ours(x) - theirs(x)).abs().max() <= 1e-5

"""Facts the reading pages state, held by code.

- Swin (book/07): within one stage the receptive field grows linearly, by one window per side per
  shifted pair of blocks, and never leaves the window without shifts.
- DINOv2 (book/02, book/08): DINOv2's own token preparation adds a position embedding of 1 + N rows to
  the class token and the patches and inserts the registers afterwards, without one; timm's
  ``no_embed_class=True`` layout reproduces it by folding the class token's row into the class token.
"""

import pytest
import timm
import torch
from timm.models.vision_transformer import _convert_dinov2

from vitcourse.models.swin import SwinBlock, receptive_field


def _extent(field: torch.Tensor) -> int:
    rows = field.any(dim=1).nonzero().flatten()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.chapter("07-swin")
@pytest.mark.parametrize("M", [4, 6, 8])
def test_swin_receptive_field_grows_one_window_per_side_per_shifted_pair(M):
    torch.manual_seed(0)
    size = 48
    widths = []
    for pairs in range(1, size // (2 * M) + 1):
        blocks = [SwinBlock(8, 2, window_size=M, shift_size=(M // 2) * (i % 2)).eval() for i in range(2 * pairs)]
        widths.append(_extent(receptive_field(blocks, size, 8)))
    assert widths == [2 * M * p for p in range(1, len(widths) + 1)]  # linear: + one window on each side per pair


@pytest.mark.chapter("07-swin")
def test_swin_receptive_field_stays_in_its_window_without_shifts():
    torch.manual_seed(0)
    blocks = [SwinBlock(8, 2, window_size=4, shift_size=0).eval() for _ in range(6)]
    assert _extent(receptive_field(blocks, 48, 8)) == 4


def _dinov2_prepare_tokens(patches, cls_token, register_tokens, pos_embed):
    """DINOv2's order (facebookresearch/dinov2, prepare_tokens_with_masks), written for this test:
    class token in front, positions (1 + N rows) added to class token and patches, then the registers
    inserted after the class token."""
    B = patches.shape[0]
    x = torch.cat([cls_token.expand(B, -1, -1), patches], dim=1) + pos_embed
    return torch.cat([x[:, :1], register_tokens.expand(B, -1, -1), x[:, 1:]], dim=1)


@pytest.mark.chapter("02-position", "08-registers")
def test_dinov2_gives_the_class_token_a_position_and_timm_folds_it_in():
    torch.manual_seed(0)
    D, R, N = 32, 4, 4
    official = {"cls_token": torch.randn(1, 1, D), "register_tokens": torch.randn(1, R, D),
                "pos_embed": torch.randn(1, 1 + N, D), "mask_token": torch.zeros(1, D)}
    assert official["pos_embed"].shape[1] == 1 + N  # one row for the class token, one per patch
    model = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, img_size=28, embed_dim=D,
                              depth=1, num_heads=2).eval()
    converted = _convert_dinov2({k: v.clone() for k, v in official.items()}, model)
    assert converted["pos_embed"].shape[1] == N  # timm's layout: patches only ...
    assert torch.equal(converted["cls_token"], official["cls_token"] + official["pos_embed"][:, :1])  # ... row folded
    model.load_state_dict({**model.state_dict(), **converted})
    patches = torch.randn(2, N, D)
    with torch.no_grad():
        timm_tokens = model._pos_embed(patches)
    want = _dinov2_prepare_tokens(patches, official["cls_token"], official["register_tokens"], official["pos_embed"])
    torch.testing.assert_close(timm_tokens, want)
    assert not torch.allclose(want[:, 0], official["cls_token"][:, 0].expand(2, -1))  # the class token moved

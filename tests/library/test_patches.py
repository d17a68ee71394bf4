"""vitcourse.models.patches against independent constructions and timm."""

import pytest
import timm
import torch

from vitcourse.models.patches import (
    PatchEmbed,
    conv_weight_to_linear,
    linear_to_conv_weight,
    num_tokens,
    patchify,
    unpatchify,
)


def patchify_by_loops(images, P):
    """Slow, obvious version: walk the grid row by row, flatten each patch as (row, col, channel)."""
    B, C, H, W = images.shape
    rows = []
    for i in range(H // P):
        for j in range(W // P):
            rows.append(images[:, :, i * P:(i + 1) * P, j * P:(j + 1) * P].permute(0, 2, 3, 1).reshape(B, -1))
    return torch.stack(rows, dim=1)


@pytest.mark.parametrize("shape,P", [((2, 3, 32, 48), 8), ((1, 1, 14, 7), 7), ((3, 4, 6, 6), 1)])
def test_patchify_matches_loops_and_round_trips(shape, P):
    x = torch.randn(*shape)
    assert torch.equal(patchify(x, P), patchify_by_loops(x, P))
    assert torch.equal(unpatchify(patchify(x, P), P, shape[2:]), x)


def test_num_tokens_known_values():
    cases = {(224, 16): 197, (224, 14): 257, (336, 14): 577, (448, 14): 1025, (1024, 14): 5330, (1024, 16): 4097}
    for (size, p), expected in cases.items():
        assert num_tokens(size, size, p) == expected
    assert num_tokens(224, 224, 14, num_registers=4) == 261
    assert num_tokens(224, 224, 16, class_token=False) == 196


def test_patch_embed_equals_timm_and_linear():
    torch.manual_seed(0)
    ours = PatchEmbed(64, 16, 3, 48)
    theirs = timm.layers.PatchEmbed(64, 16, 3, 48)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=0)
    linear = patchify(x, 16) @ conv_weight_to_linear(ours.proj.weight).T + ours.proj.bias
    torch.testing.assert_close(linear, ours(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("P,C,D", [(16, 3, 8), (4, 1, 6), (2, 5, 3)])
def test_linear_to_conv_weight_loads_a_jax_kernel_as_timm_does(P, C, D):
    """The JAX checkpoints' embedding kernel is (P, P, C, D); timm's loader transposes it to (D, C, P, P)
    (``_n2p`` in timm/models/vision_transformer.py). Flattened to (P*P*C, D) it is the matrix E."""
    torch.manual_seed(0)
    kernel = torch.randn(P, P, C, D)
    weight = linear_to_conv_weight(kernel.reshape(P * P * C, D), P)
    assert torch.equal(weight, kernel.permute(3, 2, 0, 1))
    assert torch.equal(conv_weight_to_linear(weight), kernel.reshape(P * P * C, D).T)
    x = torch.randn(2, C, 3 * P, 2 * P)
    by_conv = torch.nn.functional.conv2d(x, weight, stride=P).flatten(2).transpose(1, 2)
    torch.testing.assert_close(by_conv, patchify(x, P) @ kernel.reshape(P * P * C, D), atol=1e-5, rtol=1e-5)


def test_patch_embed_grid_matches_conv_on_other_sizes():
    embed = PatchEmbed(224, 16, 3, 8)
    assert embed(torch.zeros(1, 3, 96, 160)).shape == (1, 6 * 10, 8)


@pytest.mark.parametrize("bad", [(1, 3, 30, 32), (1, 3, 32, 33)])
def test_bad_sizes_raise_clear_errors(bad):
    with pytest.raises(ValueError, match="multiple of the patch size 16"):
        PatchEmbed(32, 16)(torch.zeros(*bad))
    with pytest.raises(ValueError, match="resize .* or pad"):
        patchify(torch.zeros(*bad), 16)


def test_patch_embed_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        PatchEmbed(32, 16, in_chans=3)(torch.zeros(1, 1, 32, 32))

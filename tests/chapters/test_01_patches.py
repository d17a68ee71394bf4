"""Chapter 1 graded tests, checked both ways.

The solution passes every graded cell on 10 seeds; each plausible bug below fails the cell meant to
catch it. (Running the notebooks in a kernel, nbgrader validate and the release sync are in
tests/test_notebooks.py.)
"""

import pytest
import torch
from einops import rearrange

from nbexec import Variant
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/01-patches/01-patches.ipynb"


# Plausible student bugs ------------------------------------------------------------------------

def patchify_channels_first(images, patch_size):
    """Values inside a patch in (channel, row, column) order, as a naive flatten of the conv input gives."""
    B, C, H, W = images.shape
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), P * P * C)


def patchify_column_major(images, patch_size):
    """Grid read column by column: patch 1 is below patch 0."""
    B, C, H, W = images.shape
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P).permute(0, 4, 2, 3, 5, 1)
    return x.reshape(B, (H // P) * (W // P), P * P * C)


def patchify_naive_reshape(images, patch_size):
    """reshape without permute: right shape, scrambled content."""
    B, C, H, W = images.shape
    return images.reshape(B, (H // patch_size) * (W // patch_size), -1)


def unpatchify_swapped_inner(patches, patch_size, img_size):
    """Rows and columns inside a patch swapped on the way back."""
    H, W = (img_size, img_size) if isinstance(img_size, int) else img_size
    P = patch_size
    B, N, D = patches.shape
    x = patches.reshape(B, H // P, W // P, P, P, D // (P * P)).permute(0, 5, 1, 4, 2, 3)
    return x.reshape(B, -1, H, W)


def num_tokens_no_cls(height, width, patch_size, class_token=True, num_registers=0):
    """Forgets the CLS token."""
    return (height // patch_size) * (width // patch_size) + num_registers


def num_tokens_ceil(height, width, patch_size, class_token=True, num_registers=0):
    """Rounds a partial patch up (a conv drops it)."""
    return -(-height // patch_size) * -(-width // patch_size) + int(class_token) + num_registers


def make_patch_embed_untransposed(solution_cls):
    class PatchEmbedChannelsFirst(solution_cls):
        """Returns (B, D, N): the flatten without the transpose."""

        def forward(self, x):
            return self.proj(x).flatten(2)

    return PatchEmbedChannelsFirst


def conv_weight_plain_reshape(weight):
    """Flattens the conv weight in (channel, row, column) order."""
    return weight.reshape(weight.shape[0], -1)


def vit_macs_no_attention(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000,
                          in_chans=3, class_token=True):
    """Forgets the two T^2 D attention products."""
    N = (img_size // patch_size) ** 2
    T, D = N + int(class_token), embed_dim
    block = 4 * T * D * D + 2 * T * D * int(D * mlp_ratio)
    return N * patch_size**2 * in_chans * D + depth * block + D * num_classes


def vit_macs_flops(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000,
                   in_chans=3, class_token=True):
    """Reports FLOPs (2 per MAC) instead of MACs."""
    N = (img_size // patch_size) ** 2
    T, D = N + int(class_token), embed_dim
    block = 4 * T * D * D + 2 * T * T * D + 2 * T * D * int(D * mlp_ratio)
    return 2 * (N * patch_size**2 * in_chans * D + depth * block + D * num_classes)


def num_tokens_memorised(height, width, patch_size, class_token=True, num_registers=0):
    """Hard-codes the visible answers: passes the visible asserts, not the hidden ones."""
    table = {(224, 224, 16, True): 197, (336, 336, 14, True): 577, (224, 224, 16, False): 196}
    return table.get((height, width, patch_size, class_token), 0)


# Different but correct answers: each must keep full marks -------------------------------------------

def patchify_unfold(images, patch_size):
    """F.unfold reads patches channel-major: reorder each patch to (row, column, channel)."""
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError(f"image {H}x{W} is not a multiple of patch size {patch_size}")
    cols = torch.nn.functional.unfold(images, kernel_size=patch_size, stride=patch_size)  # (B, C*P*P, N)
    cols = cols.reshape(B, C, patch_size, patch_size, -1).permute(0, 4, 2, 3, 1)
    return cols.reshape(B, cols.shape[1], -1)


def patchify_einops(images, patch_size):
    """einops (an allowed import, vitcourse.env.ALLOWED_IMPORTS): the axes named in the order wanted."""
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError(f"image {H}x{W} is not a multiple of patch size {patch_size}")
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


ALTERNATIVES = {
    "patchify with F.unfold": Variant({"patchify": patchify_unfold}, "test_patchify"),
    # the cells that call patchify: 9 points lost when einops was not installed where grading ran
    "patchify with einops": Variant({"patchify": patchify_einops}, "test_patchify", "test_unpatchify",
                                    "test_conv_as_linear"),
}


BUGS = {
    "patchify: channels first inside a patch": Variant({"patchify": patchify_channels_first}, "test_patchify"),
    "patchify: column-major grid": Variant({"patchify": patchify_column_major}, "test_patchify"),
    "patchify: reshape without permute": Variant({"patchify": patchify_naive_reshape}, "test_patchify"),
    "unpatchify: rows and columns swapped": Variant({"unpatchify": unpatchify_swapped_inner}, "test_unpatchify"),
    "num_tokens: no CLS": Variant({"num_tokens": num_tokens_no_cls}, "test_num_tokens"),
    "num_tokens: partial patch rounded up": Variant({"num_tokens": num_tokens_ceil}, "test_num_tokens"),
    "conv_weight_to_linear: plain reshape": Variant({"conv_weight_to_linear": conv_weight_plain_reshape}, "test_conv_as_linear"),
    "vit_macs: attention products missing": Variant({"vit_macs": vit_macs_no_attention}, "test_vit_macs"),
    "vit_macs: FLOPs instead of MACs": Variant({"vit_macs": vit_macs_flops}, "test_vit_macs"),
    "PatchEmbed: no transpose": Variant(lambda ns: {"PatchEmbed": make_patch_embed_untransposed(ns["PatchEmbed"])},
                                        "test_patch_embed"),
    "num_tokens: visible answers memorised": Variant({"num_tokens": num_tokens_memorised}, "test_num_tokens"),
}


def test_reference_error_names_numbers_and_fixes():
    from vitcourse.models.patches import PatchEmbed, patchify

    for call in (lambda: PatchEmbed(224, 16)(torch.zeros(1, 3, 230, 224)),
                 lambda: patchify(torch.zeros(1, 3, 230, 224), 16)):
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert "230" in message and "16" in message and "resize" in message and "pad" in message

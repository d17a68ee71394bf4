"""Chapter 1 (patches): plausible student bugs, each of which must lose points, and the BUGS dict."""

import math

import numpy as np
import torch

from bugs_01_macs import (
    vit_macs_always_cls,
    vit_macs_attention_once,
    vit_macs_float,
    vit_macs_flops,
    vit_macs_head_per_token,
    vit_macs_no_attention,
    vit_macs_ratio_four,
    vit_macs_rgb,
)
from nbexec import Variant

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


def num_tokens_memorised(height, width, patch_size, class_token=True, num_registers=0):
    """Hard-codes the visible answers: passes the visible asserts, not the hidden ones."""
    table = {(224, 224, 16, True): 197, (336, 336, 14, True): 577, (224, 224, 16, False): 196}
    return table.get((height, width, patch_size, class_token), 0)


def patchify_height_check_only(images, patch_size):
    """Checks that the height is a multiple of P, forgets the width."""
    B, C, H, W = images.shape
    P = patch_size
    if H % P:
        raise ValueError(f"image height {H} is not a multiple of the patch size {P}")
    x = images.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // P) * (W // P), P * P * C)


def patchify_loop_on_cpu(images, patch_size):
    """A loop over the grid that writes into a tensor made on the CPU (fails on a GPU)."""
    B, C, H, W = images.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {P}")
    out = torch.zeros(B, (H // P) * (W // P), P * P * C, dtype=images.dtype)
    for i in range(H // P):
        for j in range(W // P):
            patch = images[:, :, i * P:(i + 1) * P, j * P:(j + 1) * P]
            out[:, i * (W // P) + j] = patch.permute(0, 2, 3, 1).reshape(B, -1)
    return out


def patchify_square_grid(images, patch_size):
    """Takes the grid to be square: n = H // P rows and columns."""
    B, C, H, W = images.shape
    P, n = patch_size, images.shape[2] // patch_size
    if H % P or W % P:
        raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {P}")
    x = images.reshape(B, C, n, P, n, P).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, n * n, P * P * C)


def patchify_float32(images, patch_size):
    """Converts the images to float32 first "to be safe"."""
    return patchify_reference(images.float(), patch_size)


def patchify_three_channels(images, patch_size):
    """Assumes RGB images: the channel count is hard-coded."""
    B, _, H, W = images.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {P}")
    x = images.reshape(B, 3, H // P, P, W // P, P).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // P) * (W // P), P * P * 3)


def unpatchify_square_from_count(patches, patch_size, img_size):
    """Ignores img_size and takes a square grid of sqrt(N) patches a side."""
    B, N, D = patches.shape
    P, n = patch_size, math.isqrt(N)
    C = D // (P * P)
    x = patches.reshape(B, n, n, P, P, C).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(B, C, n * P, n * P)


def unpatchify_pair_only(patches, patch_size, img_size):
    """Unpacks img_size as a pair: an int img_size raises a TypeError."""
    H, W = img_size
    P = patch_size
    B, N, D = patches.shape
    x = patches.reshape(B, H // P, W // P, P, P, D // (P * P)).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(B, -1, H, W)


def unpatchify_three_channels(patches, patch_size, img_size):
    H, W = (img_size, img_size) if isinstance(img_size, int) else img_size
    P = patch_size
    B = patches.shape[0]
    x = patches.reshape(B, H // P, W // P, P, P, 3).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(B, 3, H, W)


def num_tokens_no_registers(height, width, patch_size, class_token=True, num_registers=0):
    return (height // patch_size) * (width // patch_size) + int(class_token)


def num_tokens_area(height, width, patch_size, class_token=True, num_registers=0):
    """Divides the image area by the patch area: counts the partial patches' pixels."""
    return height * width // patch_size**2 + int(class_token) + num_registers


def num_tokens_precedence(height, width, patch_size, class_token=True, num_registers=0):
    """Missing parentheses: H // P * W // P is ((H // P) * W) // P."""
    return height // patch_size * width // patch_size + int(class_token) + num_registers


def num_tokens_float(height, width, patch_size, class_token=True, num_registers=0):
    """Right value, as a float (numpy's floor returns floats)."""
    return np.floor(height / patch_size) * np.floor(width / patch_size) + int(class_token) + num_registers


def check_sides(x, patch_size):
    if x.shape[-2] % patch_size or x.shape[-1] % patch_size:
        raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of the patch size {patch_size}")


def make_patch_embed_reshaped(solution_cls):
    class PatchEmbedReshaped(solution_cls):
        """reshape(B, N, D) of the (B, D, h, w) output: the right shape, values scrambled."""

        def forward(self, x):
            check_sides(x, self.patch_size)
            out = self.proj(x)
            return out.reshape(out.shape[0], -1, out.shape[1])

    return PatchEmbedReshaped


def make_patch_embed_column_major(solution_cls):
    class PatchEmbedColumnMajor(solution_cls):
        """permute(0, 3, 2, 1): tokens in column-major grid order."""

        def forward(self, x):
            check_sides(x, self.patch_size)
            out = self.proj(x)
            return out.permute(0, 3, 2, 1).reshape(out.shape[0], -1, out.shape[1])

    return PatchEmbedColumnMajor


def make_patch_embed_height_check_only(solution_cls):
    class PatchEmbedHeightOnly(solution_cls):
        def forward(self, x):
            if x.shape[-2] % self.patch_size:
                raise ValueError(f"image height {x.shape[-2]} is not a multiple of {self.patch_size}")
            return self.proj(x).flatten(2).transpose(1, 2)

    return PatchEmbedHeightOnly


def make_patch_embed_rgb_only(solution_cls):
    class PatchEmbedRGB(solution_cls):
        """in_chans ignored: the convolution always reads 3 channels."""

        def __init__(self, patch_size=16, in_chans=3, embed_dim=768):
            super().__init__(patch_size, 3, embed_dim)

    return PatchEmbedRGB


def conv_weight_column_row(weight):
    """(column, row, channel) order: the rows and columns of a patch swapped."""
    return weight.permute(0, 3, 2, 1).reshape(weight.shape[0], -1)


def conv_weight_flatten_spatial_only(weight):
    """Moves the channels last, then flattens in the wrong order: (channel, row, column) again."""
    return weight.flatten(2).reshape(weight.shape[0], -1)


def patchify_reference(images, patch_size):
    from vitcourse.models.patches import patchify

    return patchify(images, patch_size)


BUGS = {
    "patchify: channels first inside a patch": Variant({"patchify": patchify_channels_first}, "test_patchify"),
    "patchify: column-major grid": Variant({"patchify": patchify_column_major}, "test_patchify"),
    "patchify: reshape without permute": Variant({"patchify": patchify_naive_reshape}, "test_patchify"),
    "patchify: error checked for the height only": Variant({"patchify": patchify_height_check_only}, "test_patchify"),
    "patchify: output tensor made on the CPU": Variant({"patchify": patchify_loop_on_cpu}, "test_patchify"),
    "patchify: square grid assumed": Variant({"patchify": patchify_square_grid}, "test_patchify"),
    "patchify: float64 turned into float32": Variant({"patchify": patchify_float32}, "test_patchify"),
    "patchify: three channels hard-coded": Variant({"patchify": patchify_three_channels}, "test_patchify"),
    "unpatchify: rows and columns swapped": Variant({"unpatchify": unpatchify_swapped_inner}, "test_unpatchify"),
    "unpatchify: square grid from the patch count": Variant({"unpatchify": unpatchify_square_from_count},
                                                           "test_unpatchify"),
    "unpatchify: int img_size not accepted": Variant({"unpatchify": unpatchify_pair_only}, "test_unpatchify"),
    "unpatchify: three channels hard-coded": Variant({"unpatchify": unpatchify_three_channels}, "test_unpatchify"),
    "num_tokens: no CLS": Variant({"num_tokens": num_tokens_no_cls}, "test_num_tokens"),
    "num_tokens: partial patch rounded up": Variant({"num_tokens": num_tokens_ceil}, "test_num_tokens"),
    "num_tokens: visible answers memorised": Variant({"num_tokens": num_tokens_memorised}, "test_num_tokens"),
    "num_tokens: registers ignored": Variant({"num_tokens": num_tokens_no_registers}, "test_num_tokens"),
    "num_tokens: area divided by the patch area": Variant({"num_tokens": num_tokens_area}, "test_num_tokens"),
    "num_tokens: H // P * W // P without parentheses": Variant({"num_tokens": num_tokens_precedence},
                                                              "test_num_tokens"),
    "num_tokens: a float": Variant({"num_tokens": num_tokens_float}, "test_num_tokens"),
    "PatchEmbed: no transpose": Variant(lambda ns: {"PatchEmbed": make_patch_embed_untransposed(ns["PatchEmbed"])},
                                        "test_patch_embed"),
    "PatchEmbed: reshape instead of transpose": Variant(
        lambda ns: {"PatchEmbed": make_patch_embed_reshaped(ns["PatchEmbed"])}, "test_patch_embed"),
    "PatchEmbed: column-major tokens": Variant(
        lambda ns: {"PatchEmbed": make_patch_embed_column_major(ns["PatchEmbed"])}, "test_patch_embed"),
    "PatchEmbed: error checked for the height only": Variant(
        lambda ns: {"PatchEmbed": make_patch_embed_height_check_only(ns["PatchEmbed"])}, "test_patch_embed"),
    "PatchEmbed: in_chans ignored": Variant(lambda ns: {"PatchEmbed": make_patch_embed_rgb_only(ns["PatchEmbed"])},
                                            "test_patch_embed"),
    "conv_weight_to_linear: plain reshape": Variant({"conv_weight_to_linear": conv_weight_plain_reshape},
                                                    "test_conv_as_linear"),
    "conv_weight_to_linear: (column, row, channel) order": Variant({"conv_weight_to_linear": conv_weight_column_row},
                                                                   "test_conv_as_linear"),
    "conv_weight_to_linear: channels not moved last": Variant(
        {"conv_weight_to_linear": conv_weight_flatten_spatial_only}, "test_conv_as_linear"),
    "vit_macs: attention products missing": Variant({"vit_macs": vit_macs_no_attention}, "test_vit_macs"),
    "vit_macs: FLOPs instead of MACs": Variant({"vit_macs": vit_macs_flops}, "test_vit_macs"),
    "vit_macs: in_chans ignored": Variant({"vit_macs": vit_macs_rgb}, "test_vit_macs"),
    "vit_macs: head counted on every token": Variant({"vit_macs": vit_macs_head_per_token}, "test_vit_macs"),
    "vit_macs: class token always counted": Variant({"vit_macs": vit_macs_always_cls}, "test_vit_macs"),
    "vit_macs: mlp_ratio ignored": Variant({"vit_macs": vit_macs_ratio_four}, "test_vit_macs"),
    "vit_macs: a float": Variant({"vit_macs": vit_macs_float}, "test_vit_macs"),
    "vit_macs: weighted sum of values not counted": Variant({"vit_macs": vit_macs_attention_once}, "test_vit_macs"),
}

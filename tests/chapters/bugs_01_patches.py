"""Chapter 1 (patches): plausible student bugs, each of which must lose points, and the BUGS dict."""

import math

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


def make_patch_embed_untransposed(solution_cls):
    class PatchEmbedChannelsFirst(solution_cls):
        """Returns (B, D, N): the flatten without the transpose."""

        def forward(self, x):
            return self.proj(x).flatten(2)

    return PatchEmbedChannelsFirst


def conv_weight_plain_reshape(weight):
    """Flattens the conv weight in (channel, row, column) order."""
    return weight.reshape(weight.shape[0], -1)


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


def linear_to_conv_no_transpose(E, patch_size):
    """Reshapes E (P*P*C, D) straight to (D, C, P, P): the right shape, the numbers of another layout."""
    P = patch_size
    return E.reshape(E.shape[1], E.shape[0] // (P * P), P, P)


def linear_to_conv_channels_first(E, patch_size):
    """Transposes, then reads each row of E as (channel, row, column)."""
    P = patch_size
    return E.T.reshape(E.shape[1], E.shape[0] // (P * P), P, P)


def linear_to_conv_rows_columns_swapped(E, patch_size):
    """permute(0, 3, 2, 1) instead of permute(0, 3, 1, 2): each kernel transposed."""
    P = patch_size
    return E.T.reshape(E.shape[1], P, P, -1).permute(0, 3, 2, 1)


def linear_to_conv_three_channels(E, patch_size):
    """Assumes RGB: C = 3 hard-coded."""
    P = patch_size
    return E.T.reshape(E.shape[1], P, P, 3).permute(0, 3, 1, 2)


def make_patch_embed_no_bias(solution_cls):
    class PatchEmbedNoBias(solution_cls):
        """Conv2d(..., bias=False): timm's and the paper's patch embedding have a bias."""

        def __init__(self, patch_size=16, in_chans=3, embed_dim=768):
            super().__init__(patch_size, in_chans, embed_dim)
            self.proj = torch.nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=False)

    return PatchEmbedNoBias


def make_patch_embed_stride_one(solution_cls):
    class PatchEmbedStrideOne(solution_cls):
        """Conv2d(C, D, kernel_size=P) with the default stride 1: overlapping windows, far too many tokens."""

        def __init__(self, patch_size=16, in_chans=3, embed_dim=768):
            super().__init__(patch_size, in_chans, embed_dim)
            self.proj = torch.nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size)

    return PatchEmbedStrideOne


def patchify_column_row_inside(images, patch_size):
    """(column, row, channel) inside a patch: the two spatial axes of the patch swapped."""
    B, C, H, W = images.shape
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 5, 3, 1)
    return x.reshape(B, (H // P) * (W // P), P * P * C)


def patchify_reference(images, patch_size):
    from vitcourse.models.patches import patchify

    return patchify(images, patch_size)


def unpatchify_grid_swapped(patches, patch_size, img_size):
    """Puts the grid back column by column: grid rows and columns swapped."""
    H, W = (img_size, img_size) if isinstance(img_size, int) else img_size
    P = patch_size
    B, N, D = patches.shape
    x = patches.reshape(B, W // P, H // P, P, P, D // (P * P)).permute(0, 5, 2, 3, 1, 4)
    return x.reshape(B, -1, H, W)


def conv_weight_as_E(weight):
    """Returns E (P*P*C, D), the paper's layout, instead of the Linear layout W = E.T (D, P*P*C)."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).T


def vit_macs_patches_one_side(img_size, patch_size, embed_dim, depth, mlp_ratio=4.0, num_classes=1000, in_chans=3,
                              class_token=True):
    """N = H / P: the patches of one row of the grid, not of the whole grid."""
    N = img_size // patch_size
    T, D = N + int(class_token), embed_dim
    block = 4 * T * D * D + 2 * T * T * D + 2 * T * D * int(D * mlp_ratio)
    return N * patch_size**2 * in_chans * D + depth * block + D * num_classes


BUGS = {
    "patchify: channels first inside a patch": Variant(
        {"patchify": patchify_channels_first}, "test_patchify", check="test_patchify",
        hint="exactly what (channel, row, column) order inside a patch gives"),
    "patchify: (column, row, channel) inside a patch": Variant(
        {"patchify": patchify_column_row_inside}, "test_patchify", check="test_patchify",
        hint="exactly what (column, row, channel) order inside a patch gives"),
    "patchify: column-major grid": Variant({"patchify": patchify_column_major}, "test_patchify", check="test_patchify",
                                           hint="exactly what a column-major grid (patch 1 below patch 0) gives"),
    "patchify: reshape without permute": Variant({"patchify": patchify_naive_reshape}, "test_patchify",
                                                 check="test_patchify", hint="exactly what a reshape without a permute gives"),
    "patchify: error checked for the height only": Variant({"patchify": patchify_height_check_only}, "test_patchify",
                                                           check="test_patchify", hint="check both the height and the width"),
    "patchify: output tensor made on the CPU": Variant({"patchify": patchify_loop_on_cpu}, "test_patchify",
                                                       check="test_patchify", hint="values were copied off the input's device"),
    "patchify: square grid assumed": Variant({"patchify": patchify_square_grid}, "test_patchify", check="test_patchify",
                                             hint="compute the sizes from the input's own shape"),
    "patchify: float64 turned into float32": Variant({"patchify": patchify_float32}, "test_patchify",
                                                     check="test_patchify", hint="expected dtype torch.float64"),
    "patchify: three channels hard-coded": Variant({"patchify": patchify_three_channels}, "test_patchify",
                                                   check="test_patchify", hint="the number of channels included, from images.shape"),
    "unpatchify: rows and columns swapped": Variant({"unpatchify": unpatchify_swapped_inner}, "test_unpatchify",
                                                    check="test_unpatchify",
                                                    hint="exactly what swapping the rows and columns inside each patch gives"),
    "unpatchify: square grid from the patch count": Variant({"unpatchify": unpatchify_square_from_count},
                                                           "test_unpatchify", check="test_unpatchify",
                                                           hint="take H and W from img_size"),
    "unpatchify: int img_size not accepted": Variant({"unpatchify": unpatchify_pair_only}, "test_unpatchify",
                                                     check="test_unpatchify", hint="an int means a square image"),
    "unpatchify: three channels hard-coded": Variant({"unpatchify": unpatchify_three_channels}, "test_unpatchify",
                                                     check="test_unpatchify", hint="C from the patch width"),
    "PatchEmbed: no transpose": Variant(lambda ns: {"PatchEmbed": make_patch_embed_untransposed(ns["PatchEmbed"])},
                                        "test_patch_embed", check="test_patch_embed", hint="transpose"),
    "PatchEmbed: reshape instead of transpose": Variant(
        lambda ns: {"PatchEmbed": make_patch_embed_reshaped(ns["PatchEmbed"])}, "test_patch_embed",
        check="test_patch_embed", hint="exactly what a reshape(B, N, D) of the (B, D, h, w) convolution output gives"),
    "PatchEmbed: column-major tokens": Variant(
        lambda ns: {"PatchEmbed": make_patch_embed_column_major(ns["PatchEmbed"])}, "test_patch_embed",
        check="test_patch_embed", hint="exactly what tokens in column-major grid order gives"),
    "PatchEmbed: error checked for the height only": Variant(
        lambda ns: {"PatchEmbed": make_patch_embed_height_check_only(ns["PatchEmbed"])}, "test_patch_embed",
        check="test_patch_embed", hint="check both the height and the width"),
    "PatchEmbed: in_chans ignored": Variant(lambda ns: {"PatchEmbed": make_patch_embed_rgb_only(ns["PatchEmbed"])},
                                            "test_patch_embed", check="test_patch_embed",
                                            hint="nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)"),
    "PatchEmbed: no bias": Variant(lambda ns: {"PatchEmbed": make_patch_embed_no_bias(ns["PatchEmbed"])},
                                   "test_patch_embed", check="test_patch_embed", hint="has a bias"),
    "PatchEmbed: stride 1": Variant(lambda ns: {"PatchEmbed": make_patch_embed_stride_one(ns["PatchEmbed"])},
                                    "test_patch_embed", check="test_patch_embed", hint="stride=patch_size"),
    "conv_weight_to_linear: plain reshape": Variant(
        {"conv_weight_to_linear": conv_weight_plain_reshape}, "test_conv_as_linear", check="test_conv_as_linear",
        hint="exactly what a plain reshape, which keeps the weight's (channel, row, column) order gives"),
    "conv_weight_to_linear: (column, row, channel) order": Variant(
        {"conv_weight_to_linear": conv_weight_column_row}, "test_conv_as_linear", check="test_conv_as_linear",
        hint="exactly what the (column, row, channel) order gives"),
    "linear_to_conv_weight: E reshaped without a transpose": Variant(
        {"linear_to_conv_weight": linear_to_conv_no_transpose}, "test_conv_as_linear", check="test_conv_as_linear",
        hint="exactly what a reshape of E without transposing it first gives"),
    "linear_to_conv_weight: rows of E read as (channel, row, column)": Variant(
        {"linear_to_conv_weight": linear_to_conv_channels_first}, "test_conv_as_linear", check="test_conv_as_linear",
        hint="exactly what reading E's rows in (channel, row, column) order gives"),
    "linear_to_conv_weight: rows and columns of each kernel swapped": Variant(
        {"linear_to_conv_weight": linear_to_conv_rows_columns_swapped}, "test_conv_as_linear",
        check="test_conv_as_linear", hint="exactly what swapping the rows and columns of each kernel gives"),
    "linear_to_conv_weight: three channels hard-coded": Variant(
        {"linear_to_conv_weight": linear_to_conv_three_channels}, "test_conv_as_linear", check="test_conv_as_linear",
        hint="C = E.shape[0] // (P * P)"),
    "vit_macs: attention products missing": Variant({"vit_macs": vit_macs_no_attention}, "test_vit_macs",
                                                    check="test_vit_macs", hint="leaving out both attention products"),
    "vit_macs: FLOPs instead of MACs": Variant({"vit_macs": vit_macs_flops}, "test_vit_macs", check="test_vit_macs",
                                               hint="FLOPs instead of MACs"),
    "vit_macs: in_chans ignored": Variant({"vit_macs": vit_macs_rgb}, "test_vit_macs", check="test_vit_macs",
                                          hint="reads in_chans channels"),
    "vit_macs: head counted on every token": Variant({"vit_macs": vit_macs_head_per_token}, "test_vit_macs",
                                                     check="test_vit_macs", hint="the head applied to every token"),
    "vit_macs: class token always counted": Variant({"vit_macs": vit_macs_always_cls}, "test_vit_macs",
                                                    check="test_vit_macs", hint="without a class token"),
    "vit_macs: mlp_ratio ignored": Variant({"vit_macs": vit_macs_ratio_four}, "test_vit_macs", check="test_vit_macs",
                                           hint="int(embed_dim * mlp_ratio)"),
    "vit_macs: a float": Variant({"vit_macs": vit_macs_float}, "test_vit_macs", check="test_vit_macs",
                                 hint="should return an int"),
    "vit_macs: weighted sum of values not counted": Variant(
        {"vit_macs": vit_macs_attention_once}, "test_vit_macs", check="test_vit_macs",
        hint="counting only one of the two attention products"),
    "unpatchify: grid rows and columns swapped": Variant({"unpatchify": unpatchify_grid_swapped}, "test_unpatchify",
                                                         check="test_unpatchify", hint="undo patchify's steps"),
    "conv_weight_to_linear: E instead of W": Variant({"conv_weight_to_linear": conv_weight_as_E}, "test_conv_as_linear",
                                                     check="test_conv_as_linear", hint="dimensions are in the wrong order"),
    "vit_macs: N = H / P": Variant({"vit_macs": vit_macs_patches_one_side}, "test_vit_macs", check="test_vit_macs",
                                   hint="compare your count part by part"),
}

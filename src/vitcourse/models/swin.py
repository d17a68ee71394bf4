"""Chapter 7: the Swin Transformer (Liu et al. 2021), in one readable file.

Attention runs inside non-overlapping M x M windows; every other block shifts the window grid by
M // 2 (a cyclic ``torch.roll`` by -shift before attention and +shift after, with a mask that keeps
tokens from different regions of the rolled image apart); patch merging halves the grid and doubles
the channels between stages, giving a pyramid at H/4, H/8, H/16, H/32 with C, 2C, 4C, 8C channels.
Feature maps are kept channels-last, (B, H, W, C), as in timm and torchvision.

Details that equivalence with timm and torchvision depends on: LayerNorm eps 1e-5; the relative
position index (dy + M - 1)(2M - 1) + (dx + M - 1); the mask value -100; the merging order
x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]; no shift (and a window equal to the grid) in
a stage whose grid is no larger than the window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.models.vit import Mlp

__all__ = ["window_partition", "window_reverse", "relative_position_index", "shifted_window_mask",
           "WindowAttention", "SwinBlock", "PatchMerging", "SwinTransformer"]


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, M, M, C), windows in row-major order per image."""
    B, H, W, C = x.shape
    M = window_size
    x = x.reshape(B, H // M, M, W // M, M, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, M, M, C)


def window_reverse(windows: torch.Tensor, window_size: int, H: int, W: int) -> torch.Tensor:
    """Inverse of ``window_partition``: (B * nW, M, M, C) -> (B, H, W, C)."""
    M, C = window_size, windows.shape[-1]
    x = windows.reshape(-1, H // M, W // M, M, M, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


def relative_position_index(window_size: int) -> torch.Tensor:
    """(M*M, M*M) index into a ((2M-1)^2, heads) bias table: (dy + M - 1) * (2M - 1) + (dx + M - 1)."""
    M = window_size
    coords = torch.stack(torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")).flatten(1)  # (2, M*M)
    rel = coords[:, :, None] - coords[:, None, :] + (M - 1)  # (2, M*M, M*M), each in [0, 2M-2]
    return rel[0] * (2 * M - 1) + rel[1]


def shifted_window_mask(height: int, width: int, window_size: int, shift: int) -> torch.Tensor:
    """Attention mask for the cyclically shifted grid: (nW, M*M, M*M), 0 or -100.

    After rolling by -shift, a window at the bottom or right edge holds tokens from up to 4 of the 9
    regions of the original image; tokens of different regions must not attend to each other.
    """
    M = window_size
    region = torch.zeros(1, height, width, 1)
    label = 0
    for rows in (slice(0, -M), slice(-M, -shift), slice(-shift, None)):
        for cols in (slice(0, -M), slice(-M, -shift), slice(-shift, None)):
            region[:, rows, cols, :] = label
            label += 1
    labels = window_partition(region, M).reshape(-1, M * M)  # (nW, M*M)
    different = labels[:, None, :] != labels[:, :, None]
    return different.float() * -100.0


class WindowAttention(nn.Module):
    """Multi-head attention inside each window, with a learned relative position bias.

    (B*nW, M*M, C) -> (B*nW, M*M, C); ``mask`` (nW, M*M, M*M) is added to the scores of each window.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads, self.window_size = num_heads, window_size
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        Bw, N, C = x.shape
        qkv = self.qkv(x).reshape(Bw, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (Bw, heads, N, N)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(N, N, -1).permute(2, 0, 1)[None]
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.reshape(Bw // nW, nW, self.num_heads, N, N) + mask[None, :, None]
            attn = attn.reshape(Bw, self.num_heads, N, N)
        x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(Bw, N, C))


class SwinBlock(nn.Module):
    """Pre-norm block with (shifted) window attention. (B, H, W, C) -> (B, H, W, C).

    With ``input_resolution=(H, W)`` a shifted block keeps the mask of that map as a buffer,
    ``attn_mask`` (nW, M*M, M*M), which moves with the block to its device, as timm keeps it (not
    saved in the state dict); a map of another size gets its mask computed in ``forward``.
    """

    attn_mask: torch.Tensor | None

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0,
                 mlp_ratio: float = 4.0, input_resolution: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.window_size, self.shift_size, self.input_resolution = window_size, shift_size, input_resolution
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shifted_window_mask(*input_resolution, window_size, shift_size) if shift_size and input_resolution else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def _mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """The mask of a shifted block for the map x (B, H, W, C): (nW, M*M, M*M), on x's device and in its
        dtype; None without a shift."""
        if not self.shift_size:
            return None
        H, W = x.shape[1:3]
        if self.attn_mask is not None and (H, W) == tuple(self.input_resolution):  # not graded in 07-swin: a full model's stored mask
            return self.attn_mask.to(x)
        return shifted_window_mask(H, W, self.window_size, self.shift_size).to(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        M, s = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x)
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        mask = self._mask(x)
        windows = window_partition(x, M).reshape(-1, M * M, C)
        windows = self.attn(windows, mask).reshape(-1, M, M, C)
        x = window_reverse(windows, M, H, W)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (official order), LayerNorm(4C), Linear(4C -> 2C).
    (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C): an odd map is padded with zeros after its last row or
    column first, as timm's ``PatchMerging`` and torchvision's ``_patch_merging_pad`` do."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinTransformer(nn.Module):
    """Swin: images (B, C, H, W) -> logits; ``forward_pyramid`` gives the four feature maps.

    H and W must be multiples of patch_size * 2^3 * window_size (224 = 4 * 8 * 7), so that every
    stage's grid splits into whole windows.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 4, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size: int = 7,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.patch_size, self.window_size, self.num_stages = patch_size, window_size, len(depths)
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.patch_norm = nn.LayerNorm(embed_dim)
        self.stages = nn.ModuleList()
        self.merges = nn.ModuleList()
        grid = img_size // patch_size
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            dim = embed_dim * 2**i
            if i > 0:
                self.merges.append(PatchMerging(dim // 2))
            # A grid no larger than the window: one window covers it and shifting is pointless.
            window = min(window_size, grid)
            shift = 0 if grid <= window_size else window_size // 2
            self.stages.append(nn.ModuleList(
                SwinBlock(dim, heads, window, shift if j % 2 else 0, mlp_ratio, input_resolution=(grid, grid))
                for j in range(depth)))
            grid //= 2
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def _check_size(self, H: int, W: int) -> None:
        unit = self.patch_size * 2 ** (self.num_stages - 1) * self.window_size
        if H % unit or W % unit:
            fix = lambda n: max(unit, round(n / unit) * unit)
            raise ValueError(
                f"input {H}x{W} does not split into whole windows: Swin needs height and width that are "
                f"multiples of {unit} (patch {self.patch_size} x 2^{self.num_stages - 1} merges x window "
                f"{self.window_size}); resize to e.g. {fix(H)}x{fix(W)} or pad to a multiple of {unit}."
            )

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, H, W) -> [(B, H/4, W/4, C), (B, H/8, W/8, 2C), (B, H/16, W/16, 4C), (B, H/32, W/32, 8C)]."""
        self._check_size(*x.shape[-2:])
        x = self.patch_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        maps = []
        for i, blocks in enumerate(self.stages):
            if i > 0:
                x = self.merges[i - 1](x)
            for block in blocks:
                x = block(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.forward_pyramid(x)[-1])
        return self.head(x.mean(dim=(1, 2)))

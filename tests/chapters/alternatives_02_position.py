"""Chapter 2 (position): different but correct answers, each of which must keep full marks, and the ALTERNATIVES dict."""

import math

import einops
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.models.position import interpolate_pos_embed

from nbexec import Variant

# Different but correct answers: each must keep full marks -------------------------------------------

def sincos_float32(embed_dim, grid_size):
    """Computed in float32 throughout, with torch.outer."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    quarter = embed_dim // 4
    omega = 10000.0 ** (-torch.arange(quarter, dtype=torch.float32) / quarter)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    ax, ay = torch.outer(xs.flatten(), omega), torch.outer(ys.flatten(), omega)
    return torch.cat([ax.sin(), ax.cos(), ay.sin(), ay.cos()], dim=1)


def sincos_numpy(embed_dim, grid_size):
    """NumPy, meshgrid over (w, h) as MAE's official code writes it, converted at the end."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    grid = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))  # [x (columns), y (rows)]

    def one_axis(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    emb = np.concatenate([one_axis(embed_dim // 2, grid[0]), one_axis(embed_dim // 2, grid[1])], axis=1)
    return torch.from_numpy(emb).float()


def sincos_loops(embed_dim, grid_size):
    """Plain loops over tokens and frequencies with math.sin and math.cos."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    quarter = embed_dim // 4
    rows = []
    for r in range(h):
        for c in range(w):
            row = []
            for p in (c, r):
                angles = [p / 10000 ** (i / quarter) for i in range(quarter)]
                row += [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
            rows.append(row)
    return torch.tensor(rows, dtype=torch.float32)


def interpolate_timm_style(pos_embed, old_grid, new_grid, num_prefix_tokens=1):
    """Computes in float32 and casts back; the grid via transpose instead of permute."""
    h, w = (old_grid, old_grid) if isinstance(old_grid, int) else old_grid
    H, W = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
    prefix, grid = pos_embed.split([num_prefix_tokens, pos_embed.shape[1] - num_prefix_tokens], dim=1)
    D, dtype = grid.shape[-1], grid.dtype
    grid = grid.float().transpose(1, 2).reshape(1, D, h, w)
    grid = F.interpolate(grid, size=(H, W), mode="bicubic", antialias=True, align_corners=False)
    return torch.cat([prefix, grid.flatten(2).transpose(1, 2).to(dtype)], dim=1)


def interpolate_einops(pos_embed, old_grid, new_grid, num_prefix_tokens=1):
    h, w = (old_grid, old_grid) if isinstance(old_grid, int) else old_grid
    H, W = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
    if (h, w) == (H, W):
        return pos_embed
    n = num_prefix_tokens
    grid = einops.rearrange(pos_embed[:, n:], "b (h w) d -> b d h w", h=h, w=w)
    grid = F.interpolate(grid, size=(H, W), mode="bicubic", antialias=True, align_corners=False)
    return torch.cat([pos_embed[:, :n], einops.rearrange(grid, "b d h w -> b (h w) d")], dim=1)


def make_tokens_separate_adds(solution_cls):
    class Tokens(solution_cls):
        """Adds the class token's position and the patches' positions separately; cls via repeat;
        always calls interpolate_pos_embed (the same grid comes back unchanged)."""

        def forward(self, images):
            P = self.patch_embed.patch_size
            grid = (images.shape[2] // P, images.shape[3] // P)
            pos = interpolate_pos_embed(self.pos_embed, self.grid, grid, num_prefix_tokens=1)
            patches = self.patch_embed(images) + pos[:, 1:]
            cls = (self.cls_token + pos[:, :1]).repeat(images.shape[0], 1, 1)
            return torch.cat((cls, patches), dim=1)

    return Tokens


def make_tokens_trunc_normal(solution_cls):
    class Tokens(solution_cls):
        """Parameters created empty, then filled with nn.init.trunc_normal_(std=0.02), as timm does."""

        def __init__(self, img_size=32, patch_size=8, in_chans=3, embed_dim=64):
            super().__init__(img_size, patch_size, in_chans, embed_dim)
            self.cls_token = nn.Parameter(torch.empty(1, 1, embed_dim))
            self.pos_embed = nn.Parameter(torch.empty(1, self.patch_embed.num_patches + 1, embed_dim))
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    return Tokens


def shuffle_advanced_indexing(tokens, perm, num_prefix_tokens=1):
    """Advanced indexing with a batch index: tokens[rows, perm + n], one permutation broadcast to every image."""
    n = num_prefix_tokens
    rows = torch.arange(tokens.shape[0], device=tokens.device)[:, None]       # (B, 1)
    return torch.cat([tokens[:, :n], tokens[rows, perm.expand(tokens.shape[0], -1) + n]], dim=1)


def shuffle_loop(tokens, perm, num_prefix_tokens=1):
    """One image at a time, torch.stack at the end."""
    n = num_prefix_tokens
    perms = perm if perm.ndim == 2 else [perm] * tokens.shape[0]
    return torch.stack([torch.cat([t[:n], t[n:][p]]) for t, p in zip(tokens, perms)])


def shuffle_take_along_dim(tokens, perm, num_prefix_tokens=1):
    """torch.take_along_dim broadcasts a (B or 1, N, 1) index over the channels."""
    n = num_prefix_tokens
    index = (perm if perm.ndim == 2 else perm[None])[..., None]
    return torch.cat([tokens[:, :n], torch.take_along_dim(tokens[:, n:], index, dim=1)], dim=1)


def unshuffle_scatter(tokens, perm, num_prefix_tokens=1):
    """Writes patch i back to position perm[i] with scatter (no inverse permutation computed)."""
    n = num_prefix_tokens
    index = (perm.expand(tokens.shape[0], -1) if perm.ndim == 1 else perm)[..., None].expand(-1, -1, tokens.shape[-1])
    return torch.cat([tokens[:, :n], torch.zeros_like(tokens[:, n:]).scatter(1, index, tokens[:, n:])], dim=1)


def unshuffle_inverse_by_scatter(tokens, perm, num_prefix_tokens=1):
    """inv[perm[i]] = i built with scatter_, then the student's own shuffle_patches-style gather."""
    n = num_prefix_tokens
    positions = torch.arange(perm.shape[-1], device=perm.device).expand_as(perm)
    inverse = torch.empty_like(perm).scatter_(-1, perm, positions)
    return shuffle_advanced_indexing(tokens, inverse, n) if inverse.ndim == 1 else shuffle_take_along_dim(tokens, inverse, n)


ALTERNATIVES = {
    "sincos in float32 with torch.outer": Variant({"sincos_2d": sincos_float32}, "test_sincos_2d"),
    "sincos in NumPy, MAE's meshgrid order": Variant({"sincos_2d": sincos_numpy}, "test_sincos_2d"),
    "sincos with loops and math": Variant({"sincos_2d": sincos_loops}, "test_sincos_2d"),
    "interpolate: timm style (float32, split, transpose)": Variant({"interpolate_pos_embed": interpolate_timm_style},
                                                                   "test_interpolate", "test_tokens"),
    "interpolate with einops": Variant({"interpolate_pos_embed": interpolate_einops},
                                       "test_interpolate", "test_tokens"),
    "Tokens: separate adds, repeat, always resized": Variant(
        lambda ns: {"Tokens": make_tokens_separate_adds(ns["Tokens"])}, "test_tokens"),
    "Tokens: trunc_normal_ initialisation": Variant(lambda ns: {"Tokens": make_tokens_trunc_normal(ns["Tokens"])},
                                                    "test_tokens"),
    "shuffle with advanced indexing": Variant({"shuffle_patches": shuffle_advanced_indexing}, "test_shuffle"),
    "shuffle one image at a time": Variant({"shuffle_patches": shuffle_loop}, "test_shuffle"),
    "shuffle with take_along_dim": Variant({"shuffle_patches": shuffle_take_along_dim}, "test_shuffle"),
    "unshuffle with scatter": Variant({"unshuffle_patches": unshuffle_scatter}, "test_shuffle"),
    "unshuffle with an inverse built by scatter_": Variant({"unshuffle_patches": unshuffle_inverse_by_scatter},
                                                           "test_shuffle"),
}

"""Chapter 2 graded tests, checked both ways: the solution passes on 10 seeds, each bug is caught."""

import torch
import torch.nn.functional as F
from torch import nn

from nbexec import Variant
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/02-position/02-position.ipynb"


def _emb_1d(d, pos, cos_first=False):
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
    a = pos.reshape(-1).double()[:, None] * omega[None]
    parts = [a.cos(), a.sin()] if cos_first else [a.sin(), a.cos()]
    return torch.cat(parts, dim=1)


def sincos_rows_first(embed_dim, grid_size):
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([_emb_1d(embed_dim // 2, rows), _emb_1d(embed_dim // 2, cols)], dim=1).float()


def sincos_cos_first(embed_dim, grid_size):
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([_emb_1d(embed_dim // 2, cols, True), _emb_1d(embed_dim // 2, rows, True)], dim=1).float()


def make_interpolate(mode="bicubic", antialias=True, keep_prefix=True):
    def interpolate(pos_embed, old_grid, new_grid, num_prefix_tokens=1):
        h, w = (old_grid, old_grid) if isinstance(old_grid, int) else old_grid
        H, W = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
        n = num_prefix_tokens if keep_prefix else 0
        prefix, grid = pos_embed[:, :n], pos_embed[:, n:]
        D = grid.shape[-1]
        if not keep_prefix:  # the plausible bug: resize everything, then cut to size
            grid = grid[:, pos_embed.shape[1] - h * w:]
            prefix = pos_embed[:, :num_prefix_tokens] * 0
        grid = grid.reshape(1, h, w, D).permute(0, 3, 1, 2)
        kwargs = dict(align_corners=False) if mode != "nearest" else {}
        grid = F.interpolate(grid, size=(H, W), mode=mode, antialias=antialias, **kwargs)
        return torch.cat([prefix, grid.permute(0, 2, 3, 1).reshape(1, H * W, D)], dim=1)

    return interpolate


def make_tokens_without_cls_position(solution_cls):
    class Tokens(solution_cls):
        """Position embedding only for the patches (N rows): the class token gets none."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pos_embed = nn.Parameter(self.pos_embed.data[:, 1:].clone())

        def forward(self, images):
            x = self.patch_embed(images) + self.pos_embed
            return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)

    return Tokens


def pool_mean_over_all(tokens, global_pool="token", num_prefix_tokens=1):
    if global_pool == "token":
        return tokens[:, 0]
    if global_pool == "avg":
        return tokens.mean(dim=1)
    raise ValueError(global_pool)


def shuffle_everything(tokens, perm, num_prefix_tokens=1):
    """Applies the permutation without skipping the prefix tokens."""
    return tokens[:, torch.cat([perm[:num_prefix_tokens], perm + num_prefix_tokens])[: tokens.shape[1]]]


BUGS = {
    "sincos: rows in the first half": Variant({"sincos_2d": sincos_rows_first}, "test_sincos_2d"),
    "sincos: cosines before sines": Variant({"sincos_2d": sincos_cos_first}, "test_sincos_2d"),
    "interpolate: bilinear": Variant({"interpolate_pos_embed": make_interpolate(mode="bilinear")}, "test_interpolate"),
    "interpolate: no antialiasing": Variant({"interpolate_pos_embed": make_interpolate(antialias=False)}, "test_interpolate"),
    "interpolate: prefix not kept": Variant({"interpolate_pos_embed": make_interpolate(keep_prefix=False)}, "test_interpolate"),
    "pool: class token in the mean": Variant({"pool": pool_mean_over_all}, "test_pool"),
    "shuffle: prefix tokens moved": Variant({"shuffle_patches": shuffle_everything}, "test_equivariance"),
    "Tokens: position embedding not covering CLS": Variant(
        lambda ns: {"Tokens": make_tokens_without_cls_position(ns["Tokens"])}, "test_tokens"),
}


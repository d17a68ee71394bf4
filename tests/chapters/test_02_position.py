"""Chapter 2 graded tests, checked both ways: the solution passes on 10 seeds, each bug is caught and each
correct alternative keeps full marks."""

import math

import einops
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vitcourse.models.position import interpolate_pos_embed

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


def sincos_xy_meshgrid(embed_dim, grid_size):
    """meshgrid with indexing="xy": the grid comes out transposed (tokens in column-major order)."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    cols, rows = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="xy")
    return torch.cat([_emb_1d(embed_dim // 2, cols), _emb_1d(embed_dim // 2, rows)], dim=1).float()


def sincos_frequencies_over_d(embed_dim, grid_size):
    """omega_i = 10000^(-i/d) instead of 10000^(-i/(d/2)): the frequencies decay half as fast."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    d = embed_dim // 2
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / d)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    emb = lambda pos: torch.cat([(pos.reshape(-1, 1) * omega).sin(), (pos.reshape(-1, 1) * omega).cos()], dim=1)
    return torch.cat([emb(cols), emb(rows)], dim=1).float()


def sincos_interleaved(embed_dim, grid_size):
    """sin and cos interleaved channel by channel (the 1D Transformer's layout), not in two halves."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")

    def emb(pos):
        d = embed_dim // 2
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        a = pos.reshape(-1).double()[:, None] * omega[None]
        return torch.stack([a.sin(), a.cos()], dim=-1).reshape(len(a), -1)

    return torch.cat([emb(cols), emb(rows)], dim=1).float()


def sincos_float64(embed_dim, grid_size):
    """Right values, left in float64."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([_emb_1d(embed_dim // 2, cols), _emb_1d(embed_dim // 2, rows)], dim=1)


def sincos_pair_as_width_height(embed_dim, grid_size):
    """Reads a pair grid_size as (w, h)."""
    w, h = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([_emb_1d(embed_dim // 2, cols), _emb_1d(embed_dim // 2, rows)], dim=1).float()


def interpolate_without_permute(pos_embed, old_grid, new_grid, num_prefix_tokens=1):
    """reshape(1, D, h, w) straight from (1, h*w, D): the right shape, channels and positions mixed."""
    h, w = (old_grid, old_grid) if isinstance(old_grid, int) else old_grid
    H, W = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    D = grid.shape[-1]
    grid = F.interpolate(grid.reshape(1, D, h, w), size=(H, W), mode="bicubic", antialias=True, align_corners=False)
    return torch.cat([prefix, grid.reshape(1, H * W, D)], dim=1)


def interpolate_one_prefix_token(pos_embed, old_grid, new_grid, num_prefix_tokens=1):
    """num_prefix_tokens ignored: always one class token."""
    return make_interpolate()(pos_embed, old_grid, new_grid, 1)


def interpolate_sides_swapped(pos_embed, old_grid, new_grid, num_prefix_tokens=1):
    """Reads the grids as (width, height)."""
    w, h = (old_grid, old_grid) if isinstance(old_grid, int) else old_grid
    W, H = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
    return make_interpolate()(pos_embed, (h, w), (H, W), num_prefix_tokens)


def interpolate_align_corners(pos_embed, old_grid, new_grid, num_prefix_tokens=1):
    h, w = (old_grid, old_grid) if isinstance(old_grid, int) else old_grid
    H, W = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    D = grid.shape[-1]
    grid = grid.reshape(1, h, w, D).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(H, W), mode="bicubic", antialias=True, align_corners=True)
    return torch.cat([prefix, grid.permute(0, 2, 3, 1).reshape(1, H * W, D)], dim=1)


def make_tokens_plain_tensor(solution_cls):
    class Tokens(solution_cls):
        """pos_embed kept as a plain tensor: it is never learned (and is not moved by .to())."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pos = self.pos_embed.detach().clone()
            del self.pos_embed
            self.pos_embed = pos

    return Tokens


def make_tokens_zero_init(solution_cls):
    class Tokens(solution_cls):
        """cls_token and pos_embed initialised to zeros instead of torch.randn(...) * 0.02."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            nn.init.zeros_(self.cls_token)
            nn.init.zeros_(self.pos_embed)

    return Tokens


def make_tokens_sliced(solution_cls):
    class Tokens(solution_cls):
        """Other image sizes: the first rows of pos_embed are taken instead of resizing the grid."""

        def forward(self, images):
            x = self.patch_embed(images)
            cls = self.cls_token.expand(x.shape[0], -1, -1)
            return torch.cat([cls, x], dim=1) + self.pos_embed[:, : x.shape[1] + 1]

    return Tokens


def make_tokens_cls_last(solution_cls):
    class Tokens(solution_cls):
        """The class token appended after the patches."""

        def forward(self, images):
            x = self.patch_embed(images)
            return torch.cat([x, self.cls_token.expand(x.shape[0], -1, -1)], dim=1) + self.pos_embed

    return Tokens


def make_tokens_cpu_cls(solution_cls):
    class Tokens(solution_cls):
        """Broadcasts the class token by adding it to zeros made on the CPU (fails on a GPU)."""

        def forward(self, images):
            x = self.patch_embed(images)
            grid = (images.shape[-2] // self.patch_embed.patch_size, images.shape[-1] // self.patch_embed.patch_size)
            pos = self.pos_embed if grid == self.grid else interpolate_pos_embed(self.pos_embed, self.grid, grid, 1)
            cls = torch.zeros(x.shape[0], 1, x.shape[-1]) + self.cls_token
            return torch.cat([cls, x], dim=1) + pos

    return Tokens


def make_tokens_grid_swapped(solution_cls):
    class Tokens(solution_cls):
        """The new grid computed as (W // P, H // P)."""

        def forward(self, images):
            x = self.patch_embed(images)
            grid = (images.shape[-1] // self.patch_embed.patch_size, images.shape[-2] // self.patch_embed.patch_size)
            pos = self.pos_embed if grid == self.grid else interpolate_pos_embed(self.pos_embed, self.grid, grid, 1)
            return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos

    return Tokens


def make_tokens_detached_resize(solution_cls):
    class Tokens(solution_cls):
        """Resizes a detached copy of pos_embed: no gradient reaches it at other sizes."""

        def forward(self, images):
            x = self.patch_embed(images)
            grid = (images.shape[-2] // self.patch_embed.patch_size, images.shape[-1] // self.patch_embed.patch_size)
            resized = interpolate_pos_embed(self.pos_embed.data, self.grid, grid, 1)
            pos = self.pos_embed if grid == self.grid else resized
            return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos

    return Tokens


def pool_drops_one_token(tokens, global_pool="token", num_prefix_tokens=1):
    """num_prefix_tokens ignored: always leaves out one token."""
    if global_pool == "token":
        return tokens[:, 0]
    if global_pool == "avg":
        return tokens[:, 1:].mean(dim=1)
    raise ValueError(global_pool)


def pool_divides_by_all(tokens, global_pool="token", num_prefix_tokens=1):
    """Sums the patch tokens, then divides by every token."""
    if global_pool == "token":
        return tokens[:, 0]
    if global_pool == "avg":
        return tokens[:, num_prefix_tokens:].sum(dim=1) / tokens.shape[1]
    raise ValueError(global_pool)


def pool_prefix_token(tokens, global_pool="token", num_prefix_tokens=1):
    """'token' reads the last prefix token instead of the first."""
    if global_pool == "token":
        return tokens[:, num_prefix_tokens - 1]
    if global_pool == "avg":
        return tokens[:, num_prefix_tokens:].mean(dim=1)
    raise ValueError(global_pool)


def shuffle_inverse(tokens, perm, num_prefix_tokens=1):
    """Scatters instead of gathers: patch token perm[i] of the result is patch token i of the input."""
    out = tokens.clone()
    out[:, num_prefix_tokens + perm] = tokens[:, num_prefix_tokens:]
    return out


def shuffle_in_place(tokens, perm, num_prefix_tokens=1):
    """Writes the shuffled patches back into the input tensor."""
    tokens[:, num_prefix_tokens:] = tokens[:, num_prefix_tokens:][:, perm]
    return tokens


def shuffle_one_prefix(tokens, perm, num_prefix_tokens=1):
    """num_prefix_tokens ignored: always keeps one token in front."""
    return torch.cat([tokens[:, :1], tokens[:, 1:][:, perm]], dim=1)


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


def pool_match(tokens, global_pool="token", num_prefix_tokens=1):
    match global_pool:
        case "token":
            return tokens.select(1, 0)
        case "avg":
            patches = tokens.narrow(1, num_prefix_tokens, tokens.shape[1] - num_prefix_tokens)
            return patches.sum(dim=1) / patches.shape[1]
    raise ValueError(f"global_pool must be 'token' or 'avg', not {global_pool!r}")


def shuffle_gather(tokens, perm, num_prefix_tokens=1):
    """torch.gather with the permutation expanded over batch and channels."""
    B, _, D = tokens.shape
    patches = tokens[:, num_prefix_tokens:]
    index = perm.to(tokens.device).view(1, -1, 1).expand(B, -1, D)
    return torch.cat([tokens[:, :num_prefix_tokens], torch.gather(patches, 1, index)], dim=1)


def shuffle_full_index(tokens, perm, num_prefix_tokens=1):
    """One index over all tokens: the prefix positions, then the shifted permutation."""
    index = torch.cat([torch.arange(num_prefix_tokens, device=perm.device), perm + num_prefix_tokens])
    return tokens.index_select(1, index)


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
    "pool with match, select and narrow": Variant({"pool": pool_match}, "test_pool"),
    "shuffle with torch.gather": Variant({"shuffle_patches": shuffle_gather}, "test_equivariance"),
    "shuffle with one index_select": Variant({"shuffle_patches": shuffle_full_index}, "test_equivariance"),
}


BUGS = {
    "sincos: rows in the first half": Variant({"sincos_2d": sincos_rows_first}, "test_sincos_2d"),
    "sincos: cosines before sines": Variant({"sincos_2d": sincos_cos_first}, "test_sincos_2d"),
    "sincos: meshgrid with indexing='xy'": Variant({"sincos_2d": sincos_xy_meshgrid}, "test_sincos_2d"),
    "sincos: frequencies 10000^(-i/d)": Variant({"sincos_2d": sincos_frequencies_over_d}, "test_sincos_2d"),
    "sincos: sin and cos interleaved": Variant({"sincos_2d": sincos_interleaved}, "test_sincos_2d"),
    "sincos: float64 result": Variant({"sincos_2d": sincos_float64}, "test_sincos_2d"),
    "sincos: pair read as (w, h)": Variant({"sincos_2d": sincos_pair_as_width_height}, "test_sincos_2d"),
    "interpolate: bilinear": Variant({"interpolate_pos_embed": make_interpolate(mode="bilinear")}, "test_interpolate"),
    "interpolate: no antialiasing": Variant({"interpolate_pos_embed": make_interpolate(antialias=False)},
                                            "test_interpolate"),
    "interpolate: prefix not kept": Variant({"interpolate_pos_embed": make_interpolate(keep_prefix=False)},
                                            "test_interpolate"),
    "interpolate: reshape to (1, D, h, w) without permute": Variant(
        {"interpolate_pos_embed": interpolate_without_permute}, "test_interpolate"),
    "interpolate: always one prefix token": Variant({"interpolate_pos_embed": interpolate_one_prefix_token},
                                                    "test_interpolate"),
    "interpolate: grids read as (width, height)": Variant({"interpolate_pos_embed": interpolate_sides_swapped},
                                                          "test_interpolate"),
    "interpolate: align_corners=True": Variant({"interpolate_pos_embed": interpolate_align_corners},
                                               "test_interpolate"),
    "Tokens: position embedding not covering CLS": Variant(
        lambda ns: {"Tokens": make_tokens_without_cls_position(ns["Tokens"])}, "test_tokens"),
    "Tokens: pos_embed a plain tensor": Variant(lambda ns: {"Tokens": make_tokens_plain_tensor(ns["Tokens"])},
                                                "test_tokens"),
    "Tokens: zero initialisation": Variant(lambda ns: {"Tokens": make_tokens_zero_init(ns["Tokens"])}, "test_tokens"),
    "Tokens: pos_embed sliced for other sizes": Variant(lambda ns: {"Tokens": make_tokens_sliced(ns["Tokens"])},
                                                        "test_tokens"),
    "Tokens: class token last": Variant(lambda ns: {"Tokens": make_tokens_cls_last(ns["Tokens"])}, "test_tokens"),
    "Tokens: class token built on the CPU": Variant(lambda ns: {"Tokens": make_tokens_cpu_cls(ns["Tokens"])},
                                                    "test_tokens"),
    "Tokens: new grid as (W // P, H // P)": Variant(lambda ns: {"Tokens": make_tokens_grid_swapped(ns["Tokens"])},
                                                    "test_tokens"),
    "Tokens: resized pos_embed detached": Variant(lambda ns: {"Tokens": make_tokens_detached_resize(ns["Tokens"])},
                                                  "test_tokens"),
    "pool: class token in the mean": Variant({"pool": pool_mean_over_all}, "test_pool"),
    "pool: always one prefix token left out": Variant({"pool": pool_drops_one_token}, "test_pool"),
    "pool: sum divided by every token": Variant({"pool": pool_divides_by_all}, "test_pool"),
    "pool: 'token' reads the last prefix token": Variant({"pool": pool_prefix_token}, "test_pool"),
    "shuffle: prefix tokens moved": Variant({"shuffle_patches": shuffle_everything}, "test_equivariance"),
    "shuffle: inverse permutation (scatter)": Variant({"shuffle_patches": shuffle_inverse}, "test_equivariance"),
    "shuffle: input changed in place": Variant({"shuffle_patches": shuffle_in_place}, "test_equivariance"),
    "shuffle: always one prefix token": Variant({"shuffle_patches": shuffle_one_prefix}, "test_equivariance"),
}

"""Chapter 2 (position): plausible student bugs, each of which must lose points, and the BUGS dict."""

import torch
import torch.nn.functional as F

from bugs_02_tokens import (
    make_tokens_cls_last,
    make_tokens_cpu_cls,
    make_tokens_detached_resize,
    make_tokens_grid_swapped,
    make_tokens_plain_tensor,
    make_tokens_sliced,
    make_tokens_without_cls_position,
    make_tokens_zero_init,
)
from nbexec import Variant


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

"""Chapter 2 (position): plausible student bugs, each of which must lose points, and the BUGS dict."""

import torch
import torch.nn.functional as F

from bugs_02_tokens import (
    make_tokens_cls_last,
    make_tokens_cls_without_position,
    make_tokens_cpu_cls,
    make_tokens_detached_resize,
    make_tokens_grid_swapped,
    make_tokens_plain_tensor,
    make_tokens_sliced,
    make_tokens_std_one,
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


# Plausible student bugs: shuffle_patches and unshuffle_patches ------------------------------------------

def _gather(patches, index):
    return patches.gather(1, index[..., None].expand(-1, -1, patches.shape[-1]))


def _per_image(perm, B):
    return perm.expand(B, -1) if perm.ndim == 1 else perm


def shuffle_everything(tokens, perm, num_prefix_tokens=1):
    """Applies the permutation without skipping the prefix tokens."""
    n = num_prefix_tokens
    return tokens[:, torch.cat([perm[:n], perm + n])[: tokens.shape[1]]]


def shuffle_scatter(tokens, perm, num_prefix_tokens=1):
    """Scatters instead of gathers: patch token perm[i] of the result is patch token i of the input."""
    n = num_prefix_tokens
    out = tokens.clone()
    index = _per_image(perm, tokens.shape[0])
    out[:, n:] = out[:, n:].scatter(1, index[..., None].expand(-1, -1, tokens.shape[-1]), tokens[:, n:])
    return out


def shuffle_in_place(tokens, perm, num_prefix_tokens=1):
    """Writes the shuffled patches back into the input tensor."""
    n = num_prefix_tokens
    tokens[:, n:] = _gather(tokens[:, n:], _per_image(perm, tokens.shape[0])).clone()
    return tokens


def shuffle_one_prefix(tokens, perm, num_prefix_tokens=1):
    """num_prefix_tokens ignored: always keeps one token in front."""
    return torch.cat([tokens[:, :1], _gather(tokens[:, 1:], _per_image(perm, tokens.shape[0]))], dim=1)


def shuffle_shared_only(tokens, perm, num_prefix_tokens=1):
    """Indexes with perm as if it were one permutation: a (B, N) perm picks whole rows in a new shape."""
    n = num_prefix_tokens
    return torch.cat([tokens[:, :n], tokens[:, n:][:, perm]], dim=1)


def shuffle_first_row(tokens, perm, num_prefix_tokens=1):
    """Uses perm[0] for every image when given one permutation per image."""
    n = num_prefix_tokens
    shared = perm if perm.ndim == 1 else perm[0]
    return torch.cat([tokens[:, :n], tokens[:, n:][:, shared]], dim=1)


def shuffle_gather_unexpanded(tokens, perm, num_prefix_tokens=1):
    """gather with a (B, N, 1) index: only channel 0 of each token is gathered."""
    n = num_prefix_tokens
    index = _per_image(perm, tokens.shape[0])[..., None]
    return torch.cat([tokens[:, :n], tokens[:, n:].gather(1, index)], dim=1)


def shuffle_reference(tokens, perm, num_prefix_tokens=1):
    n = num_prefix_tokens
    return torch.cat([tokens[:, :n], _gather(tokens[:, n:], _per_image(perm, tokens.shape[0]))], dim=1)


def unshuffle_same_perm(tokens, perm, num_prefix_tokens=1):
    """Applies perm again instead of its inverse (right only when perm is its own inverse)."""
    return shuffle_reference(tokens, perm, num_prefix_tokens)


def unshuffle_first_row(tokens, perm, num_prefix_tokens=1):
    """Inverts perm[0] and uses it for every image."""
    shared = perm if perm.ndim == 1 else perm[0]
    return shuffle_reference(tokens, shared.argsort(), num_prefix_tokens)


def unshuffle_argsort_wrong_dim(tokens, perm, num_prefix_tokens=1):
    """argsort(dim=0): right for one permutation, wrong for a (B, N) batch of them."""
    return shuffle_reference(tokens, perm.argsort(dim=0), num_prefix_tokens)


def unshuffle_one_prefix(tokens, perm, num_prefix_tokens=1):
    """num_prefix_tokens ignored: always one token in front."""
    return shuffle_reference(tokens, perm.argsort(dim=-1), 1)


def unshuffle_float32(tokens, perm, num_prefix_tokens=1):
    """Builds the output with torch.zeros (float32, on the CPU) and fills it in."""
    n = num_prefix_tokens
    out = torch.zeros(tokens.shape)
    out[:, :n] = tokens[:, :n]
    index = _per_image(perm, tokens.shape[0])
    out[:, n:] = out[:, n:].scatter(1, index[..., None].expand(-1, -1, tokens.shape[-1]), tokens[:, n:])
    return out


# Further plausible bugs ----------------------------------------------------------------------------------

def sincos_positions_from_one(embed_dim, grid_size):
    """Rows and columns counted from 1: every token shifted by one place."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(torch.arange(1, h + 1), torch.arange(1, w + 1), indexing="ij")
    return torch.cat([_emb_1d(embed_dim // 2, cols), _emb_1d(embed_dim // 2, rows)], dim=1).float()


def interpolate_in_float32(pos_embed, old_grid, new_grid, num_prefix_tokens=1):
    """Converts to float32 "because interpolate wants it" and never converts back."""
    return make_interpolate()(pos_embed.float(), old_grid, new_grid, num_prefix_tokens)


def shuffle_perm_not_offset(tokens, perm, num_prefix_tokens=1):
    """Indexes the whole sequence with perm, forgetting that the patches start after the prefix tokens."""
    n = num_prefix_tokens
    index = _per_image(perm, tokens.shape[0])
    return torch.cat([tokens[:, :n], tokens.gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))], dim=1)


def unshuffle_inverse_by_index_put(tokens, perm, num_prefix_tokens=1):
    """inv[perm] = arange(N): right for one permutation, wrong for a (B, N) batch of them."""
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.shape[-1], device=perm.device)
    return shuffle_reference(tokens, inverse, num_prefix_tokens)


BUGS = {
    "sincos: rows in the first half": Variant({"sincos_2d": sincos_rows_first}, "test_sincos_2d", check="test_sincos_2d",
                                              hint="exactly what the row in the first half and the column in the second"),
    "sincos: cosines before sines": Variant({"sincos_2d": sincos_cos_first}, "test_sincos_2d", check="test_sincos_2d",
                                            hint="sin(0) = 0 and cos(0) = 1"),
    "sincos: meshgrid with indexing='xy'": Variant({"sincos_2d": sincos_xy_meshgrid}, "test_sincos_2d",
                                                   check="test_sincos_2d", hint="exactly what a 3 x 2 grid instead of 2 x 3"),
    "sincos: frequencies 10000^(-i/d)": Variant({"sincos_2d": sincos_frequencies_over_d}, "test_sincos_2d",
                                                check="test_sincos_2d", hint="exactly what frequencies 10000^(-i/d)"),
    "sincos: sin and cos interleaved": Variant({"sincos_2d": sincos_interleaved}, "test_sincos_2d",
                                               check="test_sincos_2d", hint="sines first, then cosines"),
    "sincos: float64 result": Variant({"sincos_2d": sincos_float64}, "test_sincos_2d", check="test_sincos_2d",
                                      hint="expected dtype torch.float32"),
    "sincos: pair read as (w, h)": Variant({"sincos_2d": sincos_pair_as_width_height}, "test_sincos_2d",
                                           check="test_sincos_2d", hint="grid_size read as (columns, rows)"),
    "interpolate: bilinear": Variant({"interpolate_pos_embed": make_interpolate(mode="bilinear")}, "test_interpolate",
                                     check="test_interpolate", hint="exactly what mode='bilinear' gives"),
    "interpolate: no antialiasing": Variant({"interpolate_pos_embed": make_interpolate(antialias=False)},
                                            "test_interpolate", check="test_interpolate",
                                            hint="exactly what antialias=False gives"),
    "interpolate: prefix not kept": Variant({"interpolate_pos_embed": make_interpolate(keep_prefix=False)},
                                            "test_interpolate", check="test_interpolate",
                                            hint="prefix rows are copied, not resized"),
    "interpolate: reshape to (1, D, h, w) without permute": Variant(
        {"interpolate_pos_embed": interpolate_without_permute}, "test_interpolate", check="test_interpolate",
        hint="exactly what a reshape to (1, D, h, w) without a permute gives"),
    "interpolate: always one prefix token": Variant({"interpolate_pos_embed": interpolate_one_prefix_token},
                                                    "test_interpolate", check="test_interpolate",
                                                    hint="split off the prefix rows"),
    "interpolate: grids read as (width, height)": Variant({"interpolate_pos_embed": interpolate_sides_swapped},
                                                          "test_interpolate", check="test_interpolate",
                                                          hint="exactly what grids read as (columns, rows) gives"),
    "interpolate: align_corners=True": Variant({"interpolate_pos_embed": interpolate_align_corners},
                                               "test_interpolate", check="test_interpolate",
                                               hint="exactly what align_corners=True gives"),
    "Tokens: position embedding not covering CLS": Variant(
        lambda ns: {"Tokens": make_tokens_without_cls_position(ns["Tokens"])}, "test_tokens", check="test_tokens",
        hint="one row for the class token, then one per patch"),
    "Tokens: pos_embed a plain tensor": Variant(lambda ns: {"Tokens": make_tokens_plain_tensor(ns["Tokens"])},
                                                "test_tokens", check="test_tokens", hint="must be an nn.Parameter"),
    "Tokens: zero initialisation": Variant(lambda ns: {"Tokens": make_tokens_zero_init(ns["Tokens"])}, "test_tokens",
                                           check="test_tokens", hint="initialised with torch.randn(...) * 0.02"),
    "Tokens: pos_embed sliced for other sizes": Variant(lambda ns: {"Tokens": make_tokens_sliced(ns["Tokens"])},
                                                        "test_tokens", check="test_tokens",
                                                        hint="expand the class token to the batch"),
    "Tokens: class token last": Variant(lambda ns: {"Tokens": make_tokens_cls_last(ns["Tokens"])}, "test_tokens",
                                        check="test_tokens", hint="exactly what the class token after the patches gives"),
    "Tokens: class token built on the CPU": Variant(lambda ns: {"Tokens": make_tokens_cpu_cls(ns["Tokens"])},
                                                    "test_tokens", check="test_tokens", hint="fixed device"),
    "Tokens: new grid as (W // P, H // P)": Variant(lambda ns: {"Tokens": make_tokens_grid_swapped(ns["Tokens"])},
                                                    "test_tokens", check="test_tokens",
                                                    hint="exactly what the grid taken as (W // P, H // P) gives"),
    "Tokens: resized pos_embed detached": Variant(lambda ns: {"Tokens": make_tokens_detached_resize(ns["Tokens"])},
                                                  "test_tokens", check="test_tokens", hint="no gradient reached it"),
    "shuffle: prefix tokens moved": Variant({"shuffle_patches": shuffle_everything}, "test_shuffle",
                                            check="test_shuffle", hint="shuffling the prefix token with the patches"),
    "shuffle: inverse permutation (scatter)": Variant({"shuffle_patches": shuffle_scatter}, "test_shuffle",
                                                      check="test_shuffle", hint="exactly what the inverse permutation"),
    "shuffle: input changed in place": Variant({"shuffle_patches": shuffle_in_place}, "test_shuffle",
                                               check="test_shuffle", hint="changed the tokens it was given"),
    "shuffle: always one prefix token": Variant({"shuffle_patches": shuffle_one_prefix}, "test_shuffle",
                                                check="test_shuffle", hint="the first num_prefix_tokens tokens (0 or more) stay in front"),
    "shuffle: (B, N) perm used as one index": Variant({"shuffle_patches": shuffle_shared_only}, "test_shuffle",
                                                      check="test_shuffle", hint="when perm is (B, N)"),
    "shuffle: first image's permutation for all": Variant({"shuffle_patches": shuffle_first_row}, "test_shuffle",
                                                          check="test_shuffle",
                                                          hint="exactly what the first image's permutation used for both"),
    "shuffle: gather index not expanded over channels": Variant({"shuffle_patches": shuffle_gather_unexpanded},
                                                                "test_shuffle", check="test_shuffle",
                                                                hint="index of shape (B, N, D)"),
    "unshuffle: perm applied again": Variant({"unshuffle_patches": unshuffle_same_perm}, "test_shuffle",
                                             check="test_shuffle", hint="applying perm a second time"),
    "unshuffle: first image's inverse for all": Variant({"unshuffle_patches": unshuffle_first_row}, "test_shuffle",
                                                        check="test_shuffle", hint="invert each image's permutation"),
    "unshuffle: argsort over the batch dim": Variant({"unshuffle_patches": unshuffle_argsort_wrong_dim},
                                                     "test_shuffle", check="test_shuffle",
                                                     hint="invert each image's permutation"),
    "unshuffle: always one prefix token": Variant({"unshuffle_patches": unshuffle_one_prefix}, "test_shuffle",
                                                  check="test_shuffle", hint="whatever their number (0 too)"),
    "unshuffle: output made with torch.zeros": Variant({"unshuffle_patches": unshuffle_float32}, "test_shuffle",
                                                       check="test_shuffle", hint="fixed dtype and device"),
    "sincos: positions counted from 1": Variant({"sincos_2d": sincos_positions_from_one}, "test_sincos_2d",
                                               check="test_sincos_2d", hint="sin(0) = 0 and cos(0) = 1"),
    "interpolate: float64 turned into float32": Variant({"interpolate_pos_embed": interpolate_in_float32},
                                                        "test_interpolate", check="test_interpolate",
                                                        hint="expected dtype torch.float64"),
    "Tokens: std 1 initialisation": Variant(lambda ns: {"Tokens": make_tokens_std_one(ns["Tokens"])}, "test_tokens",
                                            check="test_tokens", hint="initialised with torch.randn(...) * 0.02"),
    "Tokens: class token without its position row": Variant(
        lambda ns: {"Tokens": make_tokens_cls_without_position(ns["Tokens"])}, "test_tokens", check="test_tokens",
        hint="add pos_embed to all N + 1 tokens"),
    "shuffle: perm not offset by the prefix tokens": Variant({"shuffle_patches": shuffle_perm_not_offset},
                                                             "test_shuffle", check="test_shuffle",
                                                             hint="the prefix token stays in front"),
    "unshuffle: inverse by index_put, one permutation only": Variant(
        {"unshuffle_patches": unshuffle_inverse_by_index_put}, "test_shuffle", check="test_shuffle",
        hint="when perm is (B, N)"),
}

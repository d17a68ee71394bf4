"""Chapter 7 (Swin): plausible student bugs, each of which must lose points, and the BUGS dict."""

import torch
import torch.nn.functional as F
from einops import rearrange

from vitcourse.models import swin as ref

from nbexec import Variant

# Plausible student bugs ------------------------------------------------------------------------

def partition_column_major(x, window_size):
    B, H, W, C = x.shape
    M = window_size
    return x.reshape(B, H // M, M, W // M, M, C).permute(0, 3, 1, 2, 4, 5).reshape(-1, M, M, C)


def partition_square_only(x, window_size):
    """Uses the height for both axes: right on square maps only."""
    B, H, W, C = x.shape
    M, n = window_size, H // window_size
    return x.reshape(B, n, M, n, M, -1).permute(0, 1, 3, 2, 4, 5).reshape(-1, M, M, C)


def reverse_height_width_swapped(windows, window_size, H, W):
    """Rebuilds a W x H grid of windows, then reads it as H x W."""
    M, C = window_size, windows.shape[-1]
    x = windows.reshape(-1, W // M, H // M, M, M, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


def partition_to_float(x, window_size):
    """Converts to float32 on the way (a habit from image code): float64 maps lose their precision."""
    return ref.window_partition(x.float(), window_size)


def relative_index_transposed(window_size):
    """dy and dx taken as key minus query."""
    return ref.relative_position_index(window_size).T.contiguous()


def relative_index_no_offset(window_size):
    M = window_size
    ys, xs = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return (ys[:, None] - ys[None, :]).abs() * (2 * M - 1) + (xs[:, None] - xs[None, :]).abs()


def relative_index_stride_m(window_size):
    """Rows of the bias table taken M long instead of 2M - 1."""
    M = window_size
    ys, xs = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return (ys[:, None] - ys[None, :] + M - 1) * M + (xs[:, None] - xs[None, :] + M - 1)


def relative_index_x_major(window_size):
    """(dx + M - 1)(2M - 1) + (dy + M - 1): the two offsets swapped in the formula."""
    M = window_size
    ys, xs = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return (xs[:, None] - xs[None, :] + M - 1) * (2 * M - 1) + (ys[:, None] - ys[None, :] + M - 1)


def relative_index_float(window_size):
    """Coordinates from a float grid: the right numbers, but no index."""
    M = window_size
    ys, xs = torch.meshgrid(torch.arange(M, dtype=torch.float32), torch.arange(M, dtype=torch.float32), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return (ys[:, None] - ys[None, :] + M - 1) * (2 * M - 1) + (xs[:, None] - xs[None, :] + M - 1)


def mask_two_regions(height, width, window_size, shift):
    """Only separates the last M rows/columns from the rest: 4 regions instead of 9."""
    M = window_size
    region = torch.zeros(1, height, width, 1)
    region[:, -M:, :] += 1
    region[:, :, -M:] += 2
    labels = ref.window_partition(region, M).reshape(-1, M * M)
    return (labels[:, None, :] != labels[:, :, None]).float() * -100.0


def mask_half_window_shift(height, width, window_size, shift):
    """Ignores the shift argument: always M // 2."""
    return ref.shifted_window_mask(height, width, window_size, window_size // 2)


def mask_square(height, width, window_size, shift):
    """Region labels on a height x height map."""
    M = window_size
    region = torch.zeros(1, height, height, 1)
    label = 0
    for rows in (slice(0, -M), slice(-M, -shift), slice(-shift, None)):
        for cols in (slice(0, -M), slice(-M, -shift), slice(-shift, None)):
            region[:, rows, cols, :] = label
            label += 1
    labels = ref.window_partition(region, M).reshape(-1, M * M)
    nW = (height // M) * (width // M)
    labels = labels.repeat(-(-nW // labels.shape[0]), 1)[:nW]
    return (labels[:, None, :] != labels[:, :, None]).float() * -100.0


def mask_bool(height, width, window_size, shift):
    """True where masked: what F.scaled_dot_product_attention would want, not the -100 of the spec."""
    return ref.shifted_window_mask(height, width, window_size, shift) != 0


def mask_float64(height, width, window_size, shift):
    """Region labels in a float64 map (torch.zeros(..., dtype=torch.float64)): the mask comes out float64."""
    return ref.shifted_window_mask(height, width, window_size, shift).double()


def block_variant(**options):
    def replace(ns):
        base = ns["SwinBlock"]
        forward = _forward(**options)
        return {"SwinBlock": type("SwinBlock", (base,), {"forward": forward})}

    return replace


def _forward(roll_sign=1, use_mask=True, roll_back=True, mask_device=True, residual_normed=False,
             second_norm="norm2", shift_from=None, roll_dims=(1, 2), norm_after_roll=False, cached_mask=False,
             repeat_mask=False, roll_by_slicing=False, einops_windows=False):
    """The forward pass of a SwinBlock, written as a student might, with one choice changed."""

    def roll(t, s, dims):
        if not roll_by_slicing:
            return torch.roll(t, shifts=tuple(s for _ in dims), dims=dims)
        for d in dims:  # torch.roll by hand: the last s entries come first
            k = s % t.shape[d]
            t = torch.cat([t.narrow(d, t.shape[d] - k, k), t.narrow(d, 0, t.shape[d] - k)], dim=d)
        return t

    def partition(t, M):
        if einops_windows:
            return rearrange(t, "b (h m1) (w m2) c -> (b h w) (m1 m2) c", m1=M, m2=M)
        return ref.window_partition(t, M).reshape(-1, M * M, t.shape[-1])

    def reverse(w, M, H, W):
        if einops_windows:
            return rearrange(w, "(b h w) (m1 m2) c -> b (h m1) (w m2) c", h=H // M, w=W // M, m1=M, m2=M)
        return ref.window_reverse(w.reshape(-1, M, M, w.shape[-1]), M, H, W)

    def forward(self, x):
        B, H, W, C = x.shape
        M = self.window_size
        s = self.shift_size if shift_from is None else shift_from(self)
        y = x if norm_after_roll else self.norm1(x)
        shortcut = y if residual_normed else x
        if s:
            y = roll(y, roll_sign * -s, roll_dims)
        if norm_after_roll:
            y = self.norm1(y)
        mask = None
        if s and use_mask:
            if cached_mask:
                cache = self.__dict__.setdefault("_masks", {})
                key = (H, W, x.device, x.dtype)
                if key not in cache:
                    cache[key] = torch.zeros(1, device=x.device, dtype=x.dtype) + ref.shifted_window_mask(
                        H, W, M, s).to(x.device)
                mask = cache[key]
            else:
                mask = ref.shifted_window_mask(H, W, M, s)
                mask = mask.to(x.device) if mask_device else mask
            if repeat_mask:
                mask = mask.repeat(B, 1, 1)  # one mask per window of every image, in the windows' order
        y = reverse(self.attn(partition(y, M), mask), M, H, W)
        if s and roll_back:
            y = roll(y, roll_sign * s, roll_dims)
        x = shortcut + y
        return x + self.mlp(getattr(self, second_norm)(x))

    return forward


def _pad(x, top_left=False):
    H, W = x.shape[1:3]
    return F.pad(x, (0, 0, W % 2, 0, H % 2, 0) if top_left else (0, 0, 0, W % 2, 0, H % 2))


def make_merging(solution_cls, gather, pad=_pad):
    class PatchMerging(solution_cls):
        def forward(self, x):
            return self.reduction(self.norm(gather(pad(x))))

    return PatchMerging


def gather_naive_reshape(x):
    """A plain reshape of 2x2 blocks: (row, col) neighbours in row-major order, not the official one."""
    B, H, W, C = x.shape
    return x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H // 2, W // 2, 4 * C)


def gather_interleaved(x):
    """Stacked on a last axis: the channels of the four neighbours interleaved."""
    parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
    return torch.stack(parts, dim=-1).flatten(-2)


def gather_official(x):
    return torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)


def make_merging_without_norm(solution_cls):
    class PatchMerging(solution_cls):
        def forward(self, x):
            return self.reduction(gather_official(_pad(x)))

    return PatchMerging


def make_merging_cpu_buffer(solution_cls):
    class PatchMerging(solution_cls):
        """Fills a new tensor created on the CPU."""

        def forward(self, x):
            x = _pad(x)
            B, H, W, C = x.shape
            out = torch.zeros(B, H // 2, W // 2, 4 * C, dtype=x.dtype)
            for i, part in enumerate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]):
                out[..., i * C:(i + 1) * C] = part
            return self.reduction(self.norm(out))

    return PatchMerging


def merging(gather, pad=_pad):
    return lambda ns: {"PatchMerging": make_merging(ns["PatchMerging"], gather, pad)}


def relative_index_transposed_formula(window_size):
    """dy and dx taken as key minus query, from the formula."""
    M = window_size
    ys, xs = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return (ys[None, :] - ys[:, None] + M - 1) * (2 * M - 1) + (xs[None, :] - xs[:, None] + M - 1)


def window_reverse_square(windows, window_size, H, W):
    """Uses H for both sides."""
    M, C = window_size, windows.shape[-1]
    return windows.reshape(-1, H // M, H // M, M, M, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, H, H, C)


def _bug(replace, cell, hint):
    """A bug that fails the visible check right under its exercise, whose message holds ``hint``."""
    return Variant(replace, cell, check=cell, hint=hint)


BUGS = {
    # windows
    "windows in column-major order": _bug({"window_partition": partition_column_major}, "test_windows",
                                          "column-major order"),
    "window_partition assumes a square map": _bug({"window_partition": partition_square_only}, "test_windows",
                                                  "H and W differ"),
    "window_reverse with height and width swapped": _bug({"window_reverse": reverse_height_width_swapped}, "test_windows",
                                                         "W/M windows per row of windows"),
    "window_reverse assumes a square map": _bug({"window_reverse": window_reverse_square}, "test_windows",
                                                "W the width (columns)"),
    "window_partition converts to float32": _bug({"window_partition": partition_to_float}, "test_windows",
                                                 "keep the input's dtype"),
    # relative position index
    "relative index transposed": _bug({"relative_position_index": relative_index_transposed}, "test_rel_index",
                                      "key minus query"),
    "relative index as key minus query, by formula": _bug({"relative_position_index": relative_index_transposed_formula},
                                                          "test_rel_index", "key minus query"),
    "relative index without the M-1 offset": _bug({"relative_position_index": relative_index_no_offset}, "test_rel_index",
                                                  "without the M - 1 shift"),
    "relative index with rows of M instead of 2M-1": _bug({"relative_position_index": relative_index_stride_m},
                                                          "test_rel_index", "M long instead of 2M - 1"),
    "relative index with dx and dy swapped": _bug({"relative_position_index": relative_index_x_major}, "test_rel_index",
                                                  "dx and dy swapped"),
    "relative index as floats": _bug({"relative_position_index": relative_index_float}, "test_rel_index",
                                     "must hold integers"),
    # mask
    "mask with 4 regions instead of 9": _bug({"shifted_window_mask": mask_two_regions}, "test_mask", "4 regions instead of 9"),
    "mask ignores the shift (always M // 2)": _bug({"shifted_window_mask": mask_half_window_shift}, "test_mask",
                                                   "a shift of M // 2"),
    "mask labels a square map": _bug({"shifted_window_mask": mask_square}, "test_mask", "the same with W = width"),
    "mask as bool": _bug({"shifted_window_mask": mask_bool}, "test_mask", "as float32"),
    "mask in float64": _bug({"shifted_window_mask": mask_float64}, "test_mask", "as float32"),
    # block
    "roll in the wrong direction": _bug(block_variant(roll_sign=-1), "test_block", "the wrong direction"),
    "shifted block without the mask": _bug(block_variant(use_mask=False), "test_block", "gave attn no mask"),
    "no roll back after attention": _bug(block_variant(roll_back=False), "test_block", "no roll back"),
    "mask left on the CPU": _bug(block_variant(mask_device=False), "test_block", "on x's device"),
    "residual from the normalised input": _bug(block_variant(residual_normed=True), "test_block",
                                               "to norm1(x) instead of x"),
    "norm1 reused before the MLP": _bug(block_variant(second_norm="norm1"), "test_block", "norm1 reused"),
    "shift taken as window_size // 2": _bug(block_variant(shift_from=lambda b: b.window_size // 2 if b.shift_size else 0),
                                            "test_block", "M // 2 instead of shift_size"),
    "roll along the height only": _bug(block_variant(roll_dims=(1,)), "test_block", "the height only"),
    # merging
    "patch merging with a naive reshape": _bug(merging(gather_naive_reshape), "test_merging", "row-major order"),
    "patch merging with interleaved channels": _bug(merging(gather_interleaved), "test_merging", "interleaved"),
    "patch merging without the norm": _bug(lambda ns: {"PatchMerging": make_merging_without_norm(ns["PatchMerging"])},
                                           "test_merging", "leaving out the norm"),
    "patch merging fills a CPU tensor": _bug(lambda ns: {"PatchMerging": make_merging_cpu_buffer(ns["PatchMerging"])},
                                             "test_merging", "on x's device"),
    "patch merging without padding": _bug(merging(gather_official, pad=lambda x: x), "test_merging", "pad an odd map"),
    "patch merging padded at the top and left": _bug(merging(gather_official, pad=lambda x: _pad(x, top_left=True)),
                                                     "test_merging", "padding at the top and left"),
}

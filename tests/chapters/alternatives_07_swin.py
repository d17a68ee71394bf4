"""Chapter 7 (Swin): different but correct answers, each of which must keep full marks, and the ALTERNATIVES dict."""

import torch
from einops import rearrange

from vitcourse.models import swin as ref

from bugs_07_swin import block_variant, merging
from nbexec import Variant

# Different but correct answers: each must keep full marks -------------------------------------------

def partition_einops(x, window_size):
    return rearrange(x, "b (h m1) (w m2) c -> (b h w) m1 m2 c", m1=window_size, m2=window_size)


def reverse_einops(windows, window_size, H, W):
    M = window_size
    return rearrange(windows, "(b h w) m1 m2 c -> b (h m1) (w m2) c", h=H // M, w=W // M)


def partition_loop(x, window_size):
    """Slices window by window, in row-major order, then stacks."""
    B, H, W, C = x.shape
    M = window_size
    windows = [x[b, i:i + M, j:j + M] for b in range(B) for i in range(0, H, M) for j in range(0, W, M)]
    return torch.stack(windows)


def reverse_loop(windows, window_size, H, W):
    M = window_size
    per_image = (H // M) * (W // M)
    B = windows.shape[0] // per_image
    out = windows.new_zeros(B, H, W, windows.shape[-1])
    for k, win in enumerate(windows):
        b, r = divmod(k, per_image)
        i, j = divmod(r, W // M)
        out[b, i * M:(i + 1) * M, j * M:(j + 1) * M] = win
    return out


def partition_unfold(x, window_size):
    """Tensor.unfold over height then width: (B, H/M, W/M, C, M, M), channels moved last."""
    M = window_size
    return x.unfold(1, M, M).unfold(2, M, M).permute(0, 1, 2, 4, 5, 3).reshape(-1, M, M, x.shape[-1])


def partition_f_unfold(x, window_size):
    """F.unfold on channels-first maps: (B, C*M*M, nW) columns, reordered to windows."""
    B, H, W, C = x.shape
    M = window_size
    cols = torch.nn.functional.unfold(x.permute(0, 3, 1, 2), kernel_size=M, stride=M)  # (B, C*M*M, nW)
    return cols.reshape(B, C, M, M, -1).permute(0, 4, 2, 3, 1).reshape(-1, M, M, C)


def relative_index_loops(window_size):
    M = window_size
    index = torch.empty(M * M, M * M, dtype=torch.long)
    for i in range(M * M):
        for j in range(M * M):
            dy, dx = i // M - j // M, i % M - j % M
            index[i, j] = (dy + M - 1) * (2 * M - 1) + (dx + M - 1)
    return index


def relative_index_divmod(window_size):
    """Coordinates from integer division and remainder of the token number."""
    M = window_size
    t = torch.arange(M * M)
    y, x = t // M, t % M
    return (y[:, None] - y[None, :] + M - 1) * (2 * M - 1) + (x[:, None] - x[None, :] + M - 1)


def mask_by_bands(height, width, window_size, shift):
    """Region of each pixel from two comparisons per axis, no slices."""
    M, s = window_size, shift
    band = lambda v, n: (v >= n - M).long() + (v >= n - s).long()
    rows = band(torch.arange(height), height)[:, None]
    cols = band(torch.arange(width), width)[None, :]
    labels = (rows * 3 + cols).reshape(1, height, width, 1)
    labels = rearrange(labels, "1 (h m1) (w m2) 1 -> (h w) (m1 m2)", m1=M, m2=M)
    return torch.where(labels[:, :, None] == labels[:, None, :], 0.0, -100.0)


def mask_masked_fill(height, width, window_size, shift):
    """Explicit ranges and masked_fill."""
    M, s = window_size, shift
    region = torch.zeros(1, height, width, 1)
    bounds_h = [(0, height - M), (height - M, height - s), (height - s, height)]
    bounds_w = [(0, width - M), (width - M, width - s), (width - s, width)]
    for a, (h0, h1) in enumerate(bounds_h):
        for b, (w0, w1) in enumerate(bounds_w):
            region[:, h0:h1, w0:w1] = 3 * a + b
    labels = ref.window_partition(region, M).flatten(1)  # (nW, M*M)
    diff = labels.unsqueeze(1) - labels.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


def gather_einops(x):
    return rearrange(x, "b (h p1) (w p2) c -> b h w (p2 p1 c)", p1=2, p2=2)


def gather_reshape(x):
    """Reshape to 2 x 2 blocks and order the pair (column offset, row offset), as the official order is."""
    B, H, W, C = x.shape
    return x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(B, H // 2, W // 2, 4 * C)


def gather_stack(x):
    parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
    return torch.stack(parts, dim=-2).flatten(-2)


ALTERNATIVES = {
    "windows with einops": Variant({"window_partition": partition_einops, "window_reverse": reverse_einops},
                                   "test_windows"),
    "windows with loops": Variant({"window_partition": partition_loop, "window_reverse": reverse_loop}, "test_windows"),
    "window_partition with Tensor.unfold": Variant({"window_partition": partition_unfold}, "test_windows"),
    "window_partition with F.unfold": Variant({"window_partition": partition_f_unfold}, "test_windows"),
    "relative index with loops": Variant({"relative_position_index": relative_index_loops}, "test_rel_index"),
    "relative index from divmod": Variant({"relative_position_index": relative_index_divmod}, "test_rel_index"),
    "mask from bands and einops": Variant({"shifted_window_mask": mask_by_bands}, "test_mask"),
    "mask with masked_fill": Variant({"shifted_window_mask": mask_masked_fill}, "test_mask"),
    "block: norm after the roll": Variant(block_variant(norm_after_roll=True), "test_block"),
    "block: mask cached per size and device": Variant(block_variant(cached_mask=True), "test_block"),
    "block: mask repeated for every image": Variant(block_variant(repeat_mask=True), "test_block"),
    "block: roll by slicing, windows with einops": Variant(block_variant(roll_by_slicing=True, einops_windows=True),
                                                           "test_block"),
    "patch merging with einops": Variant(merging(gather_einops), "test_merging"),
    "patch merging with reshape and permute": Variant(merging(gather_reshape), "test_merging"),
    "patch merging with stack": Variant(merging(gather_stack), "test_merging"),
    # chapter-wide: every piece written with einops and loops, each graded cell rerun
    "all windows with einops": Variant({"window_partition": partition_einops, "window_reverse": reverse_einops},
                                       "test_windows", "test_mask", "test_block"),
}

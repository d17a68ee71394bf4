"""Chapter 7 graded tests, checked both ways: the solution passes on 10 seeds, each bug is caught."""

import torch

from nbexec import Variant
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)
from vitcourse.models import swin as ref

NOTEBOOK = "solutions/07-swin/07-swin.ipynb"


def partition_column_major(x, window_size):
    B, H, W, C = x.shape
    M = window_size
    return x.reshape(B, H // M, M, W // M, M, C).permute(0, 3, 1, 2, 4, 5).reshape(-1, M, M, C)


def relative_index_transposed(window_size):
    """dy and dx swapped in the formula."""
    return ref.relative_position_index(window_size).T.contiguous()


def relative_index_no_offset(window_size):
    M = window_size
    ys, xs = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return (ys[:, None] - ys[None, :]).abs() * (2 * M - 1) + (xs[:, None] - xs[None, :]).abs()


def mask_two_regions(height, width, window_size, shift):
    """Only separates the last M rows/columns from the rest: 4 regions instead of 9."""
    M = window_size
    region = torch.zeros(1, height, width, 1)
    region[:, -M:, :] += 1
    region[:, :, -M:] += 2
    labels = ref.window_partition(region, M).reshape(-1, M * M)
    return (labels[:, None, :] != labels[:, :, None]).float() * -100.0


def make_block(roll_sign=1, use_mask=True):
    def swin_block_forward(block, x):
        B, H, W, C = x.shape
        M, s = block.window_size, block.shift_size
        y = block.norm1(x)
        if s:
            y = torch.roll(y, shifts=(roll_sign * -s, roll_sign * -s), dims=(1, 2))
        mask = ref.shifted_window_mask(H, W, M, s) if (s and use_mask) else None
        windows = block.attn(ref.window_partition(y, M).reshape(-1, M * M, C), mask)
        y = ref.window_reverse(windows.reshape(-1, M, M, C), M, H, W)
        if s:
            y = torch.roll(y, shifts=(roll_sign * s, roll_sign * s), dims=(1, 2))
        x = x + y
        return x + block.mlp(block.norm2(x))

    return swin_block_forward


def make_naive_merging(solution_cls):
    class PatchMerging(solution_cls):
        """A plain reshape of 2x2 blocks: (row, col) neighbours in the wrong order."""

        def forward(self, x):
            B, H, W, C = x.shape
            x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H // 2, W // 2, 4 * C)
            return self.reduction(self.norm(x))

    return PatchMerging


BUGS = {
    "windows in column-major order": Variant({"window_partition": partition_column_major}, "test_windows"),
    "relative index transposed": Variant({"relative_position_index": relative_index_transposed}, "test_rel_index"),
    "relative index without the M-1 offset": Variant({"relative_position_index": relative_index_no_offset}, "test_rel_index"),
    "mask with 4 regions instead of 9": Variant({"shifted_window_mask": mask_two_regions}, "test_mask"),
    "roll in the wrong direction": Variant({"swin_block_forward": make_block(roll_sign=-1)}, "test_block"),
    "shifted block without the mask": Variant({"swin_block_forward": make_block(use_mask=False)}, "test_block"),
    "patch merging with a naive reshape": Variant(
        lambda ns: {"PatchMerging": make_naive_merging(ns["PatchMerging"])}, "test_merging"),
}


"""Chapter 7 graded tests, checked both ways: the solution passes on 10 seeds, each plausible bug loses
the points of the cells named, each different but correct answer keeps them."""

from alternatives_07_swin import ALTERNATIVES  # noqa: F401
from bugs_07_swin import BUGS  # noqa: F401
from devicecheck import DeviceMismatch, on_meta
from solution_checks import (  # noqa: F401
    test_bug_is_seen_before_submitting,
    test_bugs_are_caught_at_their_exercise,
    test_correct_alternative_gets_full_marks,
    test_hidden_tests_reach_every_branch_of_the_references,
    test_plausible_bug_loses_points,
    test_solution_models_stay_on_one_device,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/07-swin/07-swin.ipynb"


def test_a_mask_built_on_the_cpu_is_caught(run):
    """The mistake chapter 7's own answer once made: the shifted-window mask built on the CPU."""
    ns = run.namespace
    torch, SwinBlock = ns["torch"], ns["SwinBlock"]
    window_partition, window_reverse, mask_of = ns["window_partition"], ns["window_reverse"], ns["shifted_window_mask"]

    class MaskOnCpu(SwinBlock):
        def forward(self, x):
            B, H, W, C = x.shape
            M, s = self.window_size, self.shift_size
            y = torch.roll(self.norm1(x), shifts=(-s, -s), dims=(1, 2))
            windows = self.attn(window_partition(y, M).reshape(-1, M * M, C), mask_of(H, W, M, s))
            y = torch.roll(window_reverse(windows.reshape(-1, M, M, C), M, H, W), shifts=(s, s), dims=(1, 2))
            return x + y + self.mlp(self.norm2(x + y))

    x = torch.randn(1, 8, 8, 8)
    MaskOnCpu(8, 2, window_size=4, shift_size=2)(x)  # runs on the CPU
    assert on_meta(MaskOnCpu(8, 2, window_size=4, shift_size=2), x).startswith(DeviceMismatch.__name__)
    assert on_meta(SwinBlock(8, 2, window_size=4, shift_size=2), x) is None

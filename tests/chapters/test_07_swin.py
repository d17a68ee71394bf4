"""Chapter 7's own test; the checks every chapter runs (tests/chapters/solution_checks.py: the solution on
ten seeds, each plausible bug of bugs_07_swin.py and each alternative of alternatives_07_swin.py, the
student's view) are added by tests/chapters/conftest.py from the registry."""

from devicecheck import DeviceMismatch, on_meta


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

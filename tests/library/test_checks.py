import pytest
import torch

from vitcourse import checks


def fails_with(fn, *needles):
    with pytest.raises(AssertionError) as info:
        fn()
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_shape_messages():
    checks.check_shape(torch.zeros(2, 3), (2, 3))
    fails_with(lambda: checks.check_shape(torch.zeros(2, 768, 196), (2, 196, 768)), "(2, 196, 768)", "transpose or permute")
    fails_with(lambda: checks.check_shape(torch.zeros(2, 14, 14, 768), (2, 196, 768)), "reshape or view")
    fails_with(lambda: checks.check_shape(torch.zeros(2, 196), (2, 196, 768)), "2 dimensions instead of 3")
    fails_with(lambda: checks.check_shape(torch.zeros(2, 98, 1536), (2, 196, 768)), "reshape or view")
    fails_with(lambda: checks.check_shape(torch.zeros(3, 5), (2, 5), hint="keep the batch"), "batch dimension", "Hint: keep the batch")


def test_close_messages():
    x = torch.randn(4, 5)
    checks.check_close(x + 1e-7, x)
    fails_with(lambda: checks.check_close(x * 8, x), "8x the expected", "scale")
    fails_with(lambda: checks.check_close(-x, x), "sign is flipped")
    sq = torch.randn(3, 3)
    fails_with(lambda: checks.check_close(sq.T.contiguous(), sq), "different order")
    fails_with(lambda: checks.check_close(x.numpy(), x), "torch.Tensor")
    fails_with(lambda: checks.check_close(torch.full((4, 5), float("nan")), x), "NaN")


def test_equal_true_raises():
    checks.check_equal(197, 197)
    fails_with(lambda: checks.check_equal(196, 197, name="tokens"), "tokens: expected 197, got 196")
    fails_with(lambda: checks.check_true(False, "no CLS"), "no CLS")
    checks.check_raises(lambda: int("x"), ValueError)
    fails_with(lambda: checks.check_raises(lambda: None, ValueError, name="patchify"),
               "patchify should raise ValueError, but raised nothing")
    fails_with(lambda: checks.check_raises(lambda: 1 / 0, ValueError), "ZeroDivisionError")
    fails_with(lambda: checks.check_raises(lambda: int("x"), ValueError, match="patch"), "does not mention")


def test_grad_and_probability_checks():
    lin = torch.nn.Linear(2, 2)
    lin.requires_grad_(False)
    checks.check_no_grad(lin)
    fails_with(lambda: checks.check_no_grad(torch.nn.Linear(2, 2)), "frozen")
    t = torch.randn(3, requires_grad=True)
    fails_with(lambda: checks.check_grad_flows(t), "no gradient")
    (t * 2).sum().backward()
    checks.check_grad_flows(t)
    p = torch.randn(4, 6).softmax(dim=-1)
    checks.check_sums_to_one(p, dim=-1)
    fails_with(lambda: checks.check_sums_to_one(torch.randn(5, 5).softmax(dim=0), dim=-1), "wrong axis")


def test_on_meta_catches_tensors_created_on_the_cpu():
    x = torch.empty(2, 3, device="meta")
    out = checks.check_on_meta(lambda: (x * 2, x.sum()), name="double")
    assert all(t.device.type == "meta" for t in out)
    fails_with(lambda: checks.check_on_meta(lambda: x + torch.zeros(2, 3), name="add zeros"),
               "add zeros fails when its inputs live on another device")
    fails_with(lambda: checks.check_on_meta(lambda: torch.zeros(2, 3), name="fresh"), "returned its output on cpu")
    fails_with(lambda: checks.check_on_meta(lambda: (x, torch.zeros(1)), name="pair"), "output 1 on cpu")

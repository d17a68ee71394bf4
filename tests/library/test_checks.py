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
    fails_with(lambda: checks.check_close(sq.T.contiguous(), sq), "dims 0 and 1 swapped")
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


def test_relations_name_the_mistake():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8)
    fails_with(lambda: checks.check_close(x.transpose(1, 2).contiguous().reshape(2, 6, 8).transpose(0, 0), x), "values differ")
    fails_with(lambda: checks.check_close(x[:, torch.tensor([1, 0, 3, 2, 5, 4])], x), "along dim 1 in another order")
    fails_with(lambda: checks.check_close(torch.roll(x, 1, dims=1), x), "shifted by one position along dim 1")
    y = x.clone()
    y[:, 0] += 1
    fails_with(lambda: checks.check_close(y, x), "Only position(s) 0 along dim 1 differ")
    p = torch.randn(2, 5, 5)
    fails_with(lambda: checks.check_close(p.softmax(-2), p.softmax(-1)), "sums to 1 along dim 1", "wrong axis")
    fails_with(lambda: checks.check_close(x * 2, x, inputs={"the tokens x": x * 2}), "equals the tokens x unchanged")
    fails_with(lambda: checks.check_close(x + 1e-3 * torch.randn_like(x), x, atol=1e-6, rtol=1e-6), "close but not equal")


def test_a_single_value_is_not_called_a_scale_factor():
    with pytest.raises(AssertionError) as info:
        checks.check_close(torch.tensor(10.7), torch.tensor(2.0), name="loss")
    assert "loss: got 10.7, expected 2." in str(info.value) and "scale" not in str(info.value)


def test_check_module_tells_a_train_only_difference():
    torch.manual_seed(0)
    ref = torch.nn.Linear(4, 4)
    mine = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
    mine[0].load_state_dict(ref.state_dict())
    fails_with(lambda: checks.check_module(mine, ref, torch.randn(3, 4), name="Mlp"), "matches in eval mode")
    checks.check_module(mine[0], ref, torch.randn(3, 4))


def test_exercise_names_the_cause_of_an_error():
    def lost_gradient():
        t = torch.tensor(1.0, requires_grad=True)
        torch.tensor(float(t.exp())).backward()

    def run(fn, label="Exercise 1 (clip_loss)"):
        with checks.exercise(label):
            fn()

    fails_with(lambda: run(lost_gradient), "Exercise 1 (clip_loss): your code raised RuntimeError", ".item(), float()")
    fails_with(lambda: run(lambda: torch.zeros(6).reshape(4, 2)), "x.shape")
    fails_with(lambda: run(lambda: None.shape), "`return` missing")
    fails_with(lambda: run(lambda: (_ for _ in ()).throw(NotImplementedError())), "not done yet")
    fails_with(lambda: run(lambda: checks.check_equal(1, 2, name="n")), "Exercise 1 (clip_loss): n: expected 2, got 1")


def test_run_checks_what_an_exercise_builds_on_first(capsys):
    state = {"first_ok": False}

    def check_first():
        checks.check_true(state["first_ok"], "first is wrong", hint="fix the first thing")

    def check_second():
        pass

    fails_with(lambda: checks.run(check_first, "Exercise 1 (first)"), "Exercise 1 (first): first is wrong")
    fails_with(lambda: checks.run(check_second, "Exercise 2 (second)", after=[check_first]),
               "Exercise 2 (second) builds on Exercise 1 (first), which does not pass its check yet: fix it first",
               "Hint: fix the first thing")
    state["first_ok"] = True
    checks.run(check_second, "Exercise 2 (second)", after=[check_first])
    assert capsys.readouterr().out.strip().endswith("Exercise 2 (second): visible checks passed")


def test_on_meta_passes_correct_code_the_meta_device_cannot_run():
    x = torch.empty(4, 3, device="meta")
    assert checks.check_on_meta(lambda: x[x.sum(-1) > 0], name="mask") is None
    assert checks.check_on_meta(lambda: x.sum().item(), name="item") is None
    fails_with(lambda: checks.check_on_meta(lambda: x + torch.ones(4, 3), name="add"), "fails when its inputs live")
    fails_with(lambda: checks.check_on_meta(lambda: torch.zeros(4, 3).copy_(x), name="copy"), "copied off the input's device")
    fails_with(lambda: checks.check_on_meta(lambda: x * 2, name="double", shape=(4, 4)), "expected shape (4, 4)")

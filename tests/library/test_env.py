import pytest
import torch

from vitcourse import env


@pytest.mark.parametrize("variables,expected", [
    ({"VITCOURSE_BUDGET": "full"}, "full"),
    ({"VITCOURSE_BUDGET": "tiny"}, "tiny"),
    ({"NBGRADER_EXECUTION": "autograde"}, "tiny"),
    ({"CI": "true"}, "tiny"),
    ({}, "full" if torch.cuda.is_available() else "tiny"),
])
def test_budget(monkeypatch, variables, expected):
    for name in ("VITCOURSE_BUDGET", "NBGRADER_EXECUTION", "CI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert env.budget() == expected


def test_bad_budget_is_named(monkeypatch):
    monkeypatch.setenv("VITCOURSE_BUDGET", "huge")
    with pytest.raises(ValueError, match="huge"):
        env.budget()


def test_seeds(monkeypatch):
    monkeypatch.setenv("VITCOURSE_SEED", "7")
    assert env.grading_seed() == 7
    a = env.seed_everything(3)
    b = env.seed_everything(3)
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))


def test_step_cap(monkeypatch):
    monkeypatch.delenv("VITCOURSE_MAX_STEPS", raising=False)
    assert env.max_steps() is None and env.steps(300) == 300
    monkeypatch.setenv("VITCOURSE_MAX_STEPS", "2")
    assert env.max_steps() == 2 and env.steps(300) == 2 and env.steps(1) == 1
    for bad in ("0", "-3", "two"):
        monkeypatch.setenv("VITCOURSE_MAX_STEPS", bad)
        with pytest.raises(ValueError, match="VITCOURSE_MAX_STEPS"):
            env.steps(10)


def test_fit_and_evaluate_honour_the_step_cap(monkeypatch):
    from torch import nn

    from vitcourse import train

    batches = [(torch.randn(4, 3), torch.randint(0, 2, (4,))) for _ in range(10)]
    seen = []
    model = nn.Linear(3, 2)
    model.register_forward_pre_hook(lambda module, args: seen.append(len(args[0])))
    monkeypatch.setenv("VITCOURSE_MAX_STEPS", "3")
    history = train.fit(model, batches, epochs=5, eval_loader=batches, progress=False, device="cpu")
    assert history.step == [1, 2, 3]
    assert len(seen) == 3 + 3  # three training steps, three evaluation batches
    monkeypatch.delenv("VITCOURSE_MAX_STEPS")
    assert len(train.fit(model, batches, epochs=2, progress=False, device="cpu").step) == 20


def test_check_version(monkeypatch, capsys):
    import vitcourse

    assert env.check_version(vitcourse.__version__) and capsys.readouterr().out == ""
    assert not env.check_version("0.0.1")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "0.0.1" in out[0] and vitcourse.__version__ in out[0] and "@v0.0.1" in out[0]

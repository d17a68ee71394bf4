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

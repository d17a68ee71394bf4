"""Chapter 8's own tests; the checks every chapter runs (tests/chapters/solution_checks.py: the solution on
ten seeds, each plausible bug of bugs_08_registers.py and each alternative of
alternatives_08_registers.py, the student's view) are added by tests/chapters/conftest.py from the
registry."""

import torch


def test_reference_agrees_with_the_solution(run):
    from vitcourse.models import registers as ref

    g = torch.Generator().manual_seed(0)
    f = torch.randn(4, 50, 16, generator=g)
    f[0, 3] *= 5
    assert torch.equal(run.namespace["find_artifact_tokens"](f), ref.find_artifact_tokens(f))

"""Chapter 8 graded tests, checked both ways.

The solution passes every graded cell on 10 seeds; each plausible bug (bugs_08_registers.py) fails the cell
meant to catch it.
"""

import torch

from alternatives_08_registers import ALTERNATIVES  # noqa: F401
from bugs_08_registers import BUGS  # noqa: F401
from solution_checks import (  # noqa: F401
    test_bug_is_seen_before_submitting,
    test_bugs_are_caught_at_their_exercise,
    test_correct_alternative_gets_full_marks,
    test_hidden_tests_reach_every_branch_of_the_references,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/08-registers/08-registers.ipynb"


def test_reference_agrees_with_the_solution(run):
    from vitcourse.models import registers as ref

    g = torch.Generator().manual_seed(0)
    f = torch.randn(4, 50, 16, generator=g)
    f[0, 3] *= 5
    assert torch.equal(run.namespace["find_artifact_tokens"](f), ref.find_artifact_tokens(f))

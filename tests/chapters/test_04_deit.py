"""Chapter 4 graded tests, checked both ways.

The solution passes every graded cell on 10 seeds; each plausible bug (bugs_04_deit.py) fails the cell
meant to catch it. Inference rule decided from the paper and the official code: "avg" is the mean of the two
heads' *logits* (the official ``DistilledVisionTransformer.forward`` in eval mode and timm's
``forward_head``), so averaging softmax outputs is treated as a bug.
"""

import torch
from torch import nn

from alternatives_04_deit import ALTERNATIVES  # noqa: F401
from bugs_04_deit import BUGS  # noqa: F401
from solution_checks import (  # noqa: F401
    test_bug_is_seen_before_submitting,
    test_bugs_are_caught_at_their_exercise,
    test_correct_alternative_gets_full_marks,
    test_hidden_tests_reach_every_branch_of_the_references,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/04-deit/04-deit.ipynb"


def test_reference_loss_matches_the_solution(run):
    """The notebook's solution and vitcourse.models.deit agree on random logits (same formulas)."""
    from vitcourse.models import deit as ref

    g = torch.Generator().manual_seed(0)
    teacher = nn.Linear(4, 5)
    for kind in ("none", "soft", "hard"):
        x, s, d = torch.randn(3, 4, generator=g), torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
        y = torch.randint(0, 5, (3,), generator=g)
        mine = run.namespace["DistillationLoss"](nn.CrossEntropyLoss(), teacher, 0.3, 2.0, kind)
        theirs = ref.DistillationLoss(nn.CrossEntropyLoss(), teacher, 0.3, 2.0, kind)
        torch.testing.assert_close(mine(x, (s, d), y), theirs(x, (s, d), y))

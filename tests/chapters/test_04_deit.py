"""Chapter 4's own tests; the checks every chapter runs (tests/chapters/solution_checks.py: the solution on
ten seeds, each plausible bug of bugs_04_deit.py and each alternative of alternatives_04_deit.py, the
student's view) are added by tests/chapters/conftest.py from the registry.

Inference rule decided from the paper and the official code: "avg" is the mean of the two heads' *logits*
(the official ``DistilledVisionTransformer.forward`` in eval mode and timm's ``forward_head``), so averaging
softmax outputs is treated as a bug.
"""

import torch
from torch import nn


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

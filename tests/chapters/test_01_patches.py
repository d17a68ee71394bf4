"""Chapter 1 graded tests, checked both ways.

The solution passes every graded cell on 10 seeds; each plausible bug (bugs_01_patches.py) fails the cell
meant to catch it. (Running the notebooks in a kernel, nbgrader validate and the release sync are in
tests/test_notebooks.py.)
"""

import pytest
import torch

from alternatives_01_patches import ALTERNATIVES  # noqa: F401
from bugs_01_patches import BUGS  # noqa: F401
from solution_checks import (  # noqa: F401
    test_bug_is_seen_before_submitting,
    test_bugs_are_caught_at_their_exercise,
    test_correct_alternative_gets_full_marks,
    test_hidden_tests_reach_every_branch_of_the_references,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/01-patches/01-patches.ipynb"


def test_reference_error_names_numbers_and_fixes():
    from vitcourse.models.patches import PatchEmbed, patchify

    for call in (lambda: PatchEmbed(224, 16)(torch.zeros(1, 3, 230, 224)),
                 lambda: patchify(torch.zeros(1, 3, 230, 224), 16)):
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert "230" in message and "16" in message and "resize" in message and "pad" in message

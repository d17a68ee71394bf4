"""Chapter 7 graded tests, checked both ways: the solution passes on 10 seeds, each plausible bug loses
the points of the cells named, each different but correct answer keeps them."""

from alternatives_07_swin import ALTERNATIVES  # noqa: F401
from bugs_07_swin import BUGS  # noqa: F401
from solution_checks import (  # noqa: F401
    test_bug_is_seen_before_submitting,
    test_bugs_are_caught_at_their_exercise,
    test_correct_alternative_gets_full_marks,
    test_hidden_tests_reach_every_branch_of_the_references,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/07-swin/07-swin.ipynb"

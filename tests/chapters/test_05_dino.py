"""Chapter 5 graded tests, checked both ways.

The solution passes every graded cell on 10 seeds; each plausible bug of bugs_05_dino fails the cells
meant to catch it, each answer of alternatives_05_dino keeps full marks.
"""

from alternatives_05_dino import ALTERNATIVES  # noqa: F401
from bugs_05_dino import BUGS  # noqa: F401
from solution_checks import (  # noqa: F401
    test_bug_is_seen_before_submitting,
    test_bugs_are_caught_at_their_exercise,
    test_correct_alternative_gets_full_marks,
    test_hidden_tests_reach_every_branch_of_the_references,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/05-dino/05-dino.ipynb"


def test_healthy_regime_beats_random_init_in_knn(run):
    """The section-6 experiment ran in the solution: pretrained features beat random init clearly."""
    ns = run.namespace
    accs = {}
    for name, net in (("random", ns["run"].initial), ("dino", ns["run"].teacher.backbone)):
        ftr, fte = ns["features"](net, ns["train_x"]), ns["features"](net, ns["test_x"])
        accs[name] = ns["few_shot_accuracy"](ftr, ns["train_y"], fte, ns["test_y"], 1)
    assert accs["dino"] > accs["random"] + 0.08, accs

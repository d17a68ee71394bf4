"""Chapter 6 graded tests, checked both ways: the solution passes on 10 seeds, each plausible bug loses
the points of the cells named, each different but correct answer keeps them.

The student's ``MAEEncoder`` inherits only the layers (``vitcourse.models.mae.MAELayers``), and ``MyMAE`` only
that, not the reference passes, so ``super().forward_encoder`` is no way around the exercise (a test below
checks it).
"""

from vitcourse.models import mae as ref

from alternatives_06_mae import ALTERNATIVES  # noqa: F401
from bugs_06_mae import BUGS  # noqa: F401
from solution_checks import (  # noqa: F401
    test_bug_is_seen_before_submitting,
    test_bugs_are_caught_at_their_exercise,
    test_correct_alternative_gets_full_marks,
    test_hidden_tests_reach_every_branch_of_the_references,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/06-mae/06-mae.ipynb"


def test_student_class_does_not_inherit_the_reference_passes(run):
    """The exercise's base class holds layers only: nothing to call with super()."""
    encoder, model = run.namespace["MAEEncoder"], run.namespace["MyMAE"]
    assert encoder.__mro__[1] is ref.MAELayers and model.__mro__[1] is encoder
    for name in ("forward_encoder", "forward_decoder", "forward"):
        assert name not in vars(ref.MAELayers)
    assert not issubclass(model, ref.MAE)


def test_reference_layers_and_model_share_state_dict_keys():
    layers, model = ref.MAELayers(), ref.MAE()
    assert list(layers.state_dict()) == list(model.state_dict())

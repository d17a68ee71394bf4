"""Chapter 6's own tests; the checks every chapter runs (tests/chapters/solution_checks.py: the solution on
ten seeds, each plausible bug of bugs_06_mae.py and each alternative of alternatives_06_mae.py, the
student's view) are added by tests/chapters/conftest.py from the registry.

The student's ``MyMAE`` inherits only the layers (``vitcourse.models.mae.MAELayers``), not the reference
passes, so ``super().forward_encoder`` is no way around the exercise (a test below checks it).
"""

from vitcourse.models import mae as ref


def test_student_class_does_not_inherit_the_reference_passes(run):
    """The exercise's base class holds layers only: nothing to call with super()."""
    base = run.namespace["MyMAE"].__mro__[1]
    assert base is ref.MAELayers
    for name in ("forward_encoder", "forward_decoder", "forward"):
        assert name not in vars(ref.MAELayers)
    assert not issubclass(run.namespace["MyMAE"], ref.MAE)


def test_reference_layers_and_model_share_state_dict_keys():
    layers, model = ref.MAELayers(), ref.MAE()
    assert list(layers.state_dict()) == list(model.state_dict())

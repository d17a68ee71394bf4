"""The checks every chapter's solution must pass; chapter test files import them."""

import pytest

from nbexec import failed


def test_solution_passes_every_graded_cell(run):
    assert not run.errors, run.errors
    assert run.failures() == {}


@pytest.mark.parametrize("seed", range(1, 10))
def test_solution_passes_on_other_seeds(run, seed):
    assert failed(run.rerun_tests(seed=seed)) == set()


def test_plausible_bug_loses_points(run, bug):
    missed = bug.cells - failed(run.rerun_tests(overrides=bug.overrides(run.namespace), only=bug.cells))
    assert not missed, f"the bug passes {sorted(missed)}"


def test_correct_alternative_gets_full_marks(run, alternative):
    results = run.rerun_tests(overrides=alternative.overrides(run.namespace), only=alternative.cells)
    assert failed(results) == set(), {k: v for k, v in results.items() if v}

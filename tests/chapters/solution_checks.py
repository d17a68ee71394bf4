"""The checks every chapter's solution must pass; chapter test files import them."""

import pytest

from nbexec import failed


def test_solution_passes_every_graded_cell(run):
    assert not run.errors, run.errors
    assert run.failures() == {}
    assert run.total_points == 20


@pytest.mark.parametrize("seed", range(1, 10))
def test_solution_passes_on_other_seeds(run, seed):
    assert failed(run.rerun_tests(seed=seed)) == set()

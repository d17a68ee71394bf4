"""The checks every chapter's solution must pass; chapter test files import them."""

import ast

import pytest

from devicecheck import on_meta, record_calls
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


def _answers(run) -> tuple[dict, list]:
    """The functions (name -> function) and the classes the solution's answer cells define."""
    functions, classes = {}, []
    for cell in run.cells:
        if cell.kind == "solution":
            for node in ast.parse(cell.code).body:
                if isinstance(node, ast.FunctionDef):
                    functions[node.name] = run.namespace[node.name]
                elif isinstance(node, ast.ClassDef):
                    classes.append(run.namespace[node.name])
    return functions, classes


def _outside_graded_cells(run):
    """True for a class defined in an ordinary cell (a graded cell's helpers run on the CPU)."""
    graded = {f"<cell {c.index}>" for c in run.cells if c.kind == "test"}
    return lambda cls: getattr(getattr(cls.forward, "__code__", None), "co_filename", None) not in graded


def solution_calls(run) -> dict:
    """name -> [(callable, args, kwargs), ...]: the first calls of every answer function and method,
    and of every module class the notebook defines outside its graded cells, as the graded cells
    make them."""
    functions, classes = _answers(run)
    with record_calls(functions, classes, keep=_outside_graded_cells(run)) as calls:
        run.rerun_tests(overrides=calls.wrapped)
    return calls.seen


def test_solution_models_stay_on_one_device(run):
    """Every answer and notebook class, called as the graded cells call it, runs again on the meta device
    (tests/devicecheck.py): a tensor made on the CPU inside it fails there as it would on a GPU."""
    calls = solution_calls(run)
    assert calls, "no answer function or notebook class was called by the graded cells"
    problems = [f"{name}: {error}" for name, seen in calls.items() for fn, args, kwargs in seen
                if (error := on_meta(fn, *args, **kwargs))]
    assert not problems, "\n".join(problems)

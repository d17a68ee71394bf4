"""The checks every chapter's solution must pass; chapter test files import them.

Both ways: the solution passes every graded cell on ten seeds, each plausible bug loses the points of
the cells it names AND is seen by the student before submitting (the visible check it declares fails
with the hint it declares, or it is declared hidden-only and passes the visible checks), each correct
alternative keeps every point. And the student's view as a whole: at least 85% of a chapter's bugs
fail the check right under their own exercise.
"""

import ast

import pytest
from hidden_coverage import describe, measure

from devicecheck import on_meta, record_calls
from nbexec import failed, own_check

CAUGHT_AT_OWN_EXERCISE = 0.85
# Chapters whose bug tables do not yet declare what the student sees, and whose hidden tests do not yet
# reach every branch of their references: the two tests below are expected to fail for them. Remove a
# chapter when its tables and hidden tests are done; the set must end empty.
NOT_YET_DONE: set[str] = set()


def _pending(run) -> bool:
    return run.path.parent.name in NOT_YET_DONE


def test_solution_passes_every_graded_cell(run):
    assert not run.errors, run.errors
    assert run.failures() == {}
    assert {k for k, v in run.visible_results.items() if v} == set()


@pytest.mark.parametrize("seed", range(1, 10))
def test_solution_passes_on_other_seeds(run, seed):
    assert failed(run.rerun_tests(seed=seed)) == set()


def test_plausible_bug_loses_points(run, bug):
    missed = bug.cells - failed(run.rerun_tests(overrides=bug.overrides(run.namespace), only=bug.cells))
    assert not missed, f"the bug passes {sorted(missed)}"


def test_bug_is_seen_before_submitting(run, bug):
    """What the bug declares the student sees in the release (visible checks only) is what happens."""
    if _pending(run) and not bug.declared:
        pytest.xfail("this chapter's bug table does not declare what the student sees yet")
    assert bug.declared, ("declare what the student sees: check='test_...' and hint='...' (a piece of the message), "
                          "or hidden_only='why no visible value can show it'")
    overrides = bug.overrides(run.namespace)
    if bug.hidden_only:
        results = run.rerun_tests(overrides=overrides, only=bug.cells, visible=True)
        shown = {k: v for k, v in results.items() if v}
        assert not shown, f"declared hidden-only, but visible checks fail: {shown}; declare check= and hint= instead"
        return
    message = run.rerun_tests(overrides=overrides, only={bug.check}, visible=True)[bug.check]
    assert message is not None, f"the visible checks of {bug.check} pass with this bug"
    assert bug.hint.lower() in message.lower(), f"{bug.check} fails, but its message does not say {bug.hint!r}:\n{message}"


def test_bugs_are_caught_at_their_exercise(run, request):
    """At least 85% of the bugs fail the visible check right under the exercise they change."""
    bugs = request.module.BUGS
    if _pending(run):
        pytest.xfail("this chapter's bug table does not declare what the student sees yet")
    at_own = [name for name, bug in bugs.items()
              if bug.check is not None and bug.check == own_check(run, bug.overrides(run.namespace))]
    share = len(at_own) / len(bugs)
    assert share >= CAUGHT_AT_OWN_EXERCISE, (
        f"{len(at_own)} of {len(bugs)} bugs ({share:.0%}) are caught right under their exercise; the goal is "
        f"{CAUGHT_AT_OWN_EXERCISE:.0%}. Elsewhere: {sorted(set(bugs) - set(at_own))}")


def test_correct_alternative_gets_full_marks(run, alternative):
    results = run.rerun_tests(overrides=alternative.overrides(run.namespace), only=alternative.cells)
    assert failed(results) == set(), {k: v for k, v in results.items() if v}  # (the visible checks run first)


def test_hidden_tests_reach_every_branch_of_the_references(run):
    """Each graded reference (and each library function the graded cells call in its module) has every
    branch and line reached by the graded cells, except lines marked ``# not graded in <chapter>: why``."""
    rows = measure(run)
    if _pending(run):
        pytest.xfail("this chapter's hidden tests do not reach every branch yet")
    missed = [r for r in rows if not r.complete]
    assert not missed, "branches no graded cell reaches (add hidden cases):\n" + describe(missed)


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


def test_solution_models_stay_on_one_device(run, monkeypatch):
    """Every answer and notebook class, called as the graded cells call it, runs again on the meta device
    (tests/devicecheck.py): a tensor made on the CPU inside it fails there as it would on a GPU. The
    graded cells' training stops after one step (``VITCOURSE_MAX_STEPS``): the first calls are all that
    is recorded."""
    monkeypatch.setenv("VITCOURSE_MAX_STEPS", "1")
    calls = solution_calls(run)
    assert calls, "no answer function or notebook class was called by the graded cells"
    problems = [f"{name}: {error}" for name, seen in calls.items() for fn, args, kwargs in seen
                if (error := on_meta(fn, *args, **kwargs))]
    assert not problems, "\n".join(problems)

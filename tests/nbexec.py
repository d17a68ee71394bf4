"""Run a chapter notebook's cells in this process, to test its graded tests both ways.

nbgrader runs notebooks in a kernel; that is the real thing and the suite does it too. This
module is the fast path for the questions every chapter must answer:

- does the solution pass every graded test cell on many seeds?
- does each plausible student bug fail the graded cell(s) meant to catch it, and does the student
  see it before submitting: does the *visible* part of a check (what the release shows, hidden tests
  removed) fail, with the hint that names the mistake?
- does each correct alternative keep every point?

Usage::

    run = NotebookRun("solutions/01-patches/01-patches.ipynb")   # executes every cell once
    run.failures()                     # {} : every graded cell passed
    run.rerun_tests(seed=3)            # graded cells again with VITCOURSE_SEED=3
    run.rerun_tests(overrides={"patchify": buggy_patchify}, only={"test_patchify"})
    run.rerun_tests(overrides=..., only={"test_patchify"}, visible=True)   # the student's view
    NotebookRun(path, skip_tags={"demo"})   # as the grader runs it: demonstration cells skipped

A test cell is executed as two chunks, its visible checks then its hidden tests, so one run gives
both the student's view (``visible_results``) and the grade (``results``).

Chapter test files describe plausible bugs and correct alternatives as ``Variant``s (see
tests/chapters/conftest.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from autograder import cells

REPO = pathlib.Path(__file__).resolve().parent.parent
_transform = TransformerManager().transform_cell


class _NoIPython:
    """Stand-in for get_ipython() outside a kernel: magics (e.g. %pip on Colab) do nothing."""

    def run_line_magic(self, *args, **kwargs):
        return None

    run_cell_magic = system = run_line_magic


@dataclass
class Cell:
    index: int
    kind: str  # "markdown", "code", "solution" or "test"
    grade_id: str | None
    points: float
    code: str
    tags: tuple = ()

    @property
    def visible(self) -> str:
        """What the student's release shows of a test cell: everything but the hidden tests."""
        return cells.without_hidden_tests(self.code)

    @property
    def hidden(self) -> str:
        """The hidden tests of a test cell (the code the release removes), "" for any other cell."""
        return "\n".join(m.group(0) for m in cells.HIDDEN_TESTS.finditer(self.code))


@dataclass
class NotebookRun:
    """Execute a notebook top to bottom in a fresh namespace (budget tiny, seed ``seed``)."""

    path: str | os.PathLike
    seed: int = 0
    overrides: dict = field(default_factory=dict)
    skip_tags: frozenset = frozenset()  # cells carrying one of these tags are not run (the grader skips "demo")
    results: dict = field(default_factory=dict, init=False)  # grade_id -> None | error text
    visible_results: dict = field(default_factory=dict, init=False)  # the same, visible checks only
    errors: list = field(default_factory=list, init=False)  # errors in ungraded cells

    def __post_init__(self) -> None:
        path = pathlib.Path(self.path)
        self.path = path if path.is_absolute() else REPO / path
        nb = nbformat.read(self.path, as_version=4)
        self.cells = [self._cell(i, c) for i, c in enumerate(nb.cells)]
        self.namespace = {"__name__": "__main__", "get_ipython": _NoIPython}
        with self._environment(self.seed):
            for cell in self.cells:
                if cell.kind == "markdown" or set(cell.tags) & set(self.skip_tags):
                    continue
                if cell.kind == "test":
                    self.visible_results[cell.grade_id], self.results[cell.grade_id] = self._exec_test(cell)
                    continue
                error = self._exec(cell)
                if cell.kind == "solution":
                    self.namespace.update(self.overrides)
                if error:
                    self.errors.append(f"cell {cell.index}: {error}")

    @staticmethod
    def _cell(index: int, cell) -> Cell:
        tags = tuple((cell.get("metadata") or {}).get("tags") or ())
        return Cell(index, cells.kind(cell), cells.grade_id(cell), cells.points(cell), cell.source, tags)

    def _exec_test(self, cell: Cell, visible_only: bool = False) -> tuple[str | None, str | None]:
        """(error of the visible checks, error of the whole cell): the hidden tests run after the visible
        checks, in the same namespace, only when those passed (as in the full cell)."""
        error = self._exec(cell, cell.visible)
        if error or visible_only or not cell.hidden:
            return error, error
        return None, self._exec(cell, cell.hidden)

    @contextlib.contextmanager
    def _environment(self, seed: int):
        saved = dict(os.environ)
        os.environ.update(VITCOURSE_SEED=str(seed), VITCOURSE_BUDGET="tiny", MPLBACKEND="Agg")
        old_cwd = os.getcwd()
        os.chdir(self.path.parent)  # a notebook runs in its own folder
        try:
            yield
        finally:
            os.chdir(old_cwd)
            os.environ.clear()
            os.environ.update(saved)

    def _exec(self, cell: Cell, code: str | None = None) -> str | None:
        import matplotlib.pyplot as plt

        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(_transform(cell.code if code is None else code), f"<cell {cell.index}>", "exec"),
                     self.namespace)
            return None
        except BaseException as exc:  # a cell may raise anything, even SystemExit
            if isinstance(exc, KeyboardInterrupt):
                raise
            return "".join(traceback.format_exception_only(type(exc), exc)).strip()
        finally:
            plt.close("all")

    @property
    def graded(self) -> list[Cell]:
        return [c for c in self.cells if c.kind == "test"]

    @property
    def total_points(self) -> float:
        return sum(c.points for c in self.graded)

    def failures(self) -> dict:
        """grade_id -> error message, for every graded cell that failed in the first run."""
        return {k: v for k, v in self.results.items() if v is not None}

    def cell(self, grade_id: str) -> Cell:
        found = [c for c in self.cells if c.grade_id == grade_id]
        if not found:
            raise KeyError(f"no cell with grade id {grade_id!r} in {self.path.name}")
        return found[0]

    def rerun_tests(self, seed: int | None = None, overrides: dict | None = None, only=None,
                    visible: bool = False) -> dict:
        """Run the graded cells again (optionally with another seed and replaced names).

        ``only``: a set of grade ids to run (default: every graded cell); ``visible``: run only their
        visible checks, as the student sees them before submitting.
        ``overrides`` replace names in the notebook's own namespace for the duration of the rerun, so
        helpers defined in ordinary cells (a training function that builds the student's model) use
        the replacement too; the namespace is restored afterwards, so runs don't leak into each other.
        Returns grade_id -> error message (None when the cell passed).
        """
        if only is not None:
            unknown = set(only) - {c.grade_id for c in self.graded}
            if unknown:
                raise KeyError(f"no graded cell {sorted(unknown)} in {self.path.name}")
        snapshot = dict(self.namespace)
        self.namespace.update(overrides or {})
        try:
            with self._environment(self.seed if seed is None else seed):
                return {c.grade_id: self._exec_test(c, visible_only=visible)[0 if visible else 1]
                        for c in self.graded if only is None or c.grade_id in only}
        finally:
            self.namespace.clear()
            self.namespace.update(snapshot)


@dataclass(frozen=True)
class Variant:
    """A student's answer put in place of the solution's, and the graded cells that must judge it.

    ``replace`` maps notebook names to the student's objects, or is a function of the solution's
    namespace returning that mapping (for a class derived from the solution's own). ``cells`` are
    the grade ids of the cells meant to catch it (a bug: it must lose their points) or that must still
    pass (a correct alternative); only those cells are rerun.

    A bug also says what the student sees before submitting, one of:

    - ``check`` and ``hint``: the graded cell whose *visible* checks fail (usually the check right
      under the exercise the bug is in) and a piece of the message the student reads there;
    - ``hidden_only``: why no visible check can show it (only for mistakes the visible values cannot
      show, such as sizes hard-coded to the visible example); its visible checks must then pass.
    """

    replace: dict | Callable[[dict], dict]
    cells: frozenset
    check: str | None = None
    hint: str | None = None
    hidden_only: str | None = None

    def __init__(self, replace, *cells: str, check: str | None = None, hint: str | None = None,
                 hidden_only: str | None = None) -> None:
        if not cells:
            raise ValueError("a Variant names the graded cells that judge it (Variant(replace, 'test_x', ...))")
        if (check is None) != (hint is None):
            raise ValueError("a bug seen before submitting declares both check= (the grade id) and hint= (text of its message)")
        if check is not None and hidden_only is not None:
            raise ValueError("a bug is either seen by a visible check (check=, hint=) or hidden_only=, not both")
        object.__setattr__(self, "replace", replace)
        object.__setattr__(self, "cells", frozenset(cells))
        object.__setattr__(self, "check", check)
        object.__setattr__(self, "hint", hint)
        object.__setattr__(self, "hidden_only", hidden_only)

    @property
    def declared(self) -> bool:
        """Whether the bug says what the student sees before submitting."""
        return self.check is not None or self.hidden_only is not None

    def overrides(self, namespace: dict) -> dict:
        return self.replace(namespace) if callable(self.replace) else dict(self.replace)


def own_check(run: NotebookRun, names) -> str | None:
    """The graded cell right under the exercise that defines ``names`` (the first test cell after the last
    cell, solution or not, that defines one of them at top level), or None."""
    defining = [c.index for c in run.cells if c.kind in ("solution", "code") and _defines(c.code) & set(names)]
    if not defining:
        return None
    after = [c for c in run.graded if c.index > max(defining)]
    return after[0].grade_id if after else None


def _defines(code: str) -> set:
    import ast

    try:
        tree = ast.parse(_transform(code))
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def failed(results: dict) -> set:
    """The grade ids that failed in a results dict."""
    return {k for k, v in results.items() if v is not None}

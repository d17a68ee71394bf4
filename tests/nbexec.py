"""Run a chapter notebook's cells in this process, to test its graded tests both ways.

nbgrader runs notebooks in a kernel; that is the real thing and the suite does it too. This
module is the fast path for the two questions every chapter must answer:

- does the solution pass every graded test cell on many seeds?
- does each plausible student bug fail the graded cell(s) meant to catch it?

Usage::

    run = NotebookRun("solutions/01-patches/01-patches.ipynb")   # executes every cell once
    run.failures()                     # {} : every graded cell passed
    run.rerun_tests(seed=3)            # graded cells again with VITCOURSE_SEED=3
    run.rerun_tests(overrides={"patchify": buggy_patchify}, only={"test_patchify"})

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


@dataclass
class NotebookRun:
    """Execute a notebook top to bottom in a fresh namespace (budget tiny, seed ``seed``)."""

    path: str | os.PathLike
    seed: int = 0
    overrides: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict, init=False)  # grade_id -> None | error text
    errors: list = field(default_factory=list, init=False)  # errors in ungraded cells

    def __post_init__(self) -> None:
        path = pathlib.Path(self.path)
        self.path = path if path.is_absolute() else REPO / path
        nb = nbformat.read(self.path, as_version=4)
        self.cells = [self._cell(i, c) for i, c in enumerate(nb.cells)]
        self.namespace = {"__name__": "__main__", "get_ipython": _NoIPython}
        with self._environment(self.seed):
            for cell in self.cells:
                if cell.kind == "markdown":
                    continue
                error = self._exec(cell)
                if cell.kind == "solution":
                    self.namespace.update(self.overrides)
                if cell.kind == "test":
                    self.results[cell.grade_id] = error
                elif error:
                    self.errors.append(f"cell {cell.index}: {error}")

    @staticmethod
    def _cell(index: int, cell) -> Cell:
        return Cell(index, cells.kind(cell), cells.grade_id(cell), cells.points(cell), cell.source)

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

    def _exec(self, cell: Cell) -> str | None:
        import matplotlib.pyplot as plt

        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(_transform(cell.code), f"<cell {cell.index}>", "exec"), self.namespace)
            return None
        except BaseException as exc:  # noqa: BLE001 - a cell may raise anything, even SystemExit
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

    def rerun_tests(self, seed: int | None = None, overrides: dict | None = None, only=None) -> dict:
        """Run the graded cells again (optionally with another seed and replaced names).

        ``only``: a set of grade ids to run (default: every graded cell).
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
                return {c.grade_id: self._exec(c) for c in self.graded if only is None or c.grade_id in only}
        finally:
            self.namespace.clear()
            self.namespace.update(snapshot)


@dataclass(frozen=True)
class Variant:
    """A student's answer put in place of the solution's, and the graded cells that must judge it.

    ``replace`` maps notebook names to the student's objects, or is a function of the solution's
    namespace returning that mapping (for a class derived from the solution's own). ``cells`` are
    the grade ids of the cells meant to catch it (a bug) or that must still pass (a correct
    alternative); only those cells are rerun.
    """

    replace: dict | Callable[[dict], dict]
    cells: frozenset

    def __init__(self, replace, *cells: str) -> None:
        object.__setattr__(self, "replace", replace)
        object.__setattr__(self, "cells", frozenset(cells))

    def overrides(self, namespace: dict) -> dict:
        return self.replace(namespace) if callable(self.replace) else dict(self.replace)


def failed(results: dict) -> set:
    """The grade ids that failed in a results dict."""
    return {k for k, v in results.items() if v is not None}

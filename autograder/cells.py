"""nbgrader cell metadata, read in one place.

Every function takes a cell as nbformat gives it (a ``NotebookNode``) or as plain JSON (a dict whose
``source`` may be a list of lines), so release notebooks, sources and damaged student files all go
through the same code. Depends on nothing but the standard library and nbformat.

    >>> kind(cell)           # "markdown" | "code" | "solution" | "test"
    >>> nbgrader(cell)       # the cell's nbgrader metadata, {} when there is none
    >>> grade_id(cell)       # "patchify" or None
    >>> points(cell)         # 4.0 for a test cell, 0.0 for any other cell
    >>> answers(nb)          # {grade id: solution cell}, in notebook order
    >>> solution_code(cell)  # the source without the BEGIN/END SOLUTION marker lines

The kinds of code cells: a *solution* cell holds the student's answer (``solution: true``, graded by
its tests or by hand); a *test* cell is an autograded check (``grade: true``, ``solution: false``);
any other code cell is ``"code"``. Every non-code cell is ``"markdown"``; ``is_solution`` also
covers a written answer in a markdown cell (``solution: true``).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Literal

import nbformat

Kind = Literal["markdown", "code", "solution", "test"]

SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.M)
HIDDEN_TESTS = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[^\n]*", re.S | re.M)


def nbgrader(cell) -> dict:
    """The cell's ``nbgrader`` metadata (empty when there is none or it was lost)."""
    meta = cell.get("metadata") or {}
    found = meta.get("nbgrader") if isinstance(meta, dict) else None
    return found if isinstance(found, dict) else {}


def source(cell) -> str:
    """The cell's source as one string."""
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else str(s)


def kind(cell) -> Kind:
    """``"markdown"`` (any non-code cell), ``"solution"`` (an answer), ``"test"`` (an autograded
    check) or ``"code"`` (any other code cell)."""
    if cell.get("cell_type", "code") != "code":
        return "markdown"
    meta = nbgrader(cell)
    if meta.get("solution"):
        return "solution"
    if meta.get("grade"):
        return "test"
    return "code"


def is_solution(cell) -> bool:
    """An answer cell: code, or a written answer in markdown."""
    return bool(nbgrader(cell).get("solution"))


def is_test(cell) -> bool:
    return kind(cell) == "test"


def grade_id(cell) -> str | None:
    return nbgrader(cell).get("grade_id") or None


def is_written(cell) -> bool:
    """A written answer: a markdown answer cell that a person grades (``solution`` and ``grade``)."""
    meta = nbgrader(cell)
    return cell.get("cell_type", "code") == "markdown" and bool(meta.get("solution")) and bool(meta.get("grade"))


def points(cell) -> float:
    """Points of a test cell or a written answer, 0.0 for any other cell."""
    return float(nbgrader(cell).get("points") or 0.0) if kind(cell) == "test" or is_written(cell) else 0.0


def is_locked(cell) -> bool:
    return bool(nbgrader(cell).get("locked"))


def answers(nb: dict) -> dict[str, dict]:
    """{grade id: solution cell} in notebook order."""
    return {grade_id(c): c for c in nb["cells"] if is_solution(c) and grade_id(c)}


def tests(nb: dict) -> dict[str, dict]:
    """{grade id: test cell} in notebook order."""
    return {grade_id(c): c for c in nb["cells"] if is_test(c) and grade_id(c)}


def total_points(nb: dict) -> float:
    """Every point of the notebook: autograded tests and written answers."""
    return sum(points(c) for c in nb["cells"])


def written(nb: dict) -> dict[str, dict]:
    """{grade id: written answer cell} in notebook order."""
    return {grade_id(c): c for c in nb["cells"] if is_written(c) and grade_id(c)}


def autograded_points(nb: dict) -> float:
    """The points the autograder can give: the test cells' (written answers wait for a person)."""
    return sum(points(c) for c in nb["cells"] if kind(c) == "test")


def solution_code(cell) -> str:
    """A source cell's answer as a student would write it: the marker lines removed."""
    return SOLUTION_MARKER.sub("", source(cell))


def without_hidden_tests(text: str, placeholder: str = "") -> str:
    """``text`` with every ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` block replaced."""
    return HIDDEN_TESTS.sub(placeholder, text)


def read(path: str | os.PathLike) -> dict:
    """A notebook's JSON, lenient about its nbformat version and encoding.

    Raises ``ValueError`` naming the problem for a file that is not a notebook."""
    try:
        data = json.loads(pathlib.Path(path).read_bytes().decode("utf-8", errors="replace"))
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError("JSON without a list of cells; not a notebook")
    return data


def write(nb: dict, path: str | os.PathLike) -> None:
    """Write ``nb`` (a dict or a NotebookNode) as a valid nbformat 4 notebook."""
    nbformat.write(nbformat.from_dict(nb), str(path))

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
    >>> written(nb)          # {grade id: written answer cell}: scored by a person
    >>> is_demo(cell)        # a demonstration (tag "demo"): the grader does not run it
    >>> rubric(cell), model_answer(cell), question_text(nb, gid)

The kinds of code cells: a *solution* cell holds the student's answer (``solution: true``, graded by
its tests or by hand); a *test* cell is an autograded check (``grade: true``, ``solution: false``);
any other code cell is ``"code"``. Every non-code cell is ``"markdown"``; ``is_solution`` also
covers a written answer in a markdown cell (``solution: true``).

A *written* answer is a manually graded markdown cell (``solution: true, grade: true, points: N``,
grade id ``q_...``). Its source holds the model answer between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` lines (the release replaces each region with "YOUR ANSWER HERE"; a
predict-then-run question has two regions, after ``**Prediction**`` and ``**What happened, and
why**``); the rubric is the paragraph that starts with ``**Rubric`` in the last region, up to the
region's end; the question is the markdown cell(s) just above.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
from typing import Literal

import nbformat

Kind = Literal["markdown", "code", "solution", "test"]

SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.M)
DEMO_TAG = "demo"  # cell tag of demonstrations, plots and full-budget runs that no graded cell needs
DEMO_PLACEHOLDER = "# (a demonstration: the grader does not run it; its output is in your own notebook)"
SOLUTION_REGION = re.compile(r"^[ \t]*### BEGIN SOLUTION[^\n]*\n(.*?)^[ \t]*### END SOLUTION[^\n]*\n?", re.S | re.M)
RUBRIC = re.compile(r"^\*\*Rubric.*", re.S | re.M)
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


def rubric(cell) -> str:
    """The rubric of a written answer's source: from ``**Rubric`` to the end of the last solution region."""
    regions = SOLUTION_REGION.findall(source(cell))
    found = RUBRIC.search(regions[-1]) if regions else None
    return found.group(0).strip() if found else ""


def model_answer(cell) -> str:
    """A written answer's source as the model answer: marker lines and the rubric removed."""
    regions = SOLUTION_REGION.findall(source(cell))
    text = source(cell)
    if regions and RUBRIC.search(regions[-1]):
        last = regions[-1]
        text = text.replace(last, last[: RUBRIC.search(last).start()].rstrip() + "\n")
    return re.sub(r"\n{3,}", "\n\n", SOLUTION_MARKER.sub("", text)).strip()


def question_text(nb: dict, gid: str) -> str:
    """The markdown cell(s) just above the answer cell ``gid``; ungraded code cells between them (the
    experiment of a predict-then-run question) are skipped."""
    index = next(i for i, c in enumerate(nb["cells"]) if grade_id(c) == gid)
    above: list[str] = []
    for c in reversed(nb["cells"][:index]):
        if nbgrader(c) or (c.get("cell_type") != "markdown" and above):
            break
        if c.get("cell_type") == "markdown":
            above.append(source(c).strip())
    return "\n\n".join(reversed(above))


def tags(cell) -> list[str]:
    meta = cell.get("metadata") or {}
    found = meta.get("tags") if isinstance(meta, dict) else None
    return list(found) if isinstance(found, list) else []


def is_demo(cell) -> bool:
    """A demonstration: an ungraded code cell tagged ``demo`` (jupytext: ``# %% tags=["demo"]``)."""
    return kind(cell) == "code" and DEMO_TAG in tags(cell)


def without_demos(nb: dict) -> dict:
    """A copy of ``nb`` whose demonstration cells hold one comment line instead of their code."""
    out = copy.deepcopy(nb)
    for cell in out["cells"]:
        if is_demo(cell):
            cell["source"], cell["outputs"], cell["execution_count"] = DEMO_PLACEHOLDER, [], None
    return out


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

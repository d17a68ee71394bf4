"""What nbgrader's metadata says about a notebook cell: the one place that reads it."""

from __future__ import annotations

from collections.abc import Mapping


def nbgrader(cell: Mapping) -> dict:
    """The cell's nbgrader metadata ({} when it has none)."""
    return dict((cell.get("metadata") or {}).get("nbgrader") or {})


def kind(cell: Mapping) -> str:
    """``"markdown"``, ``"code"`` (not graded), ``"solution"`` (an answer cell) or ``"test"`` (graded)."""
    meta = nbgrader(cell)
    if cell.get("cell_type") != "code":
        return "markdown"
    if meta.get("solution"):
        return "solution"
    if meta.get("grade"):
        return "test"
    return "code"


def grade_id(cell: Mapping) -> str | None:
    return nbgrader(cell).get("grade_id")


def points(cell: Mapping) -> float:
    """Points of a graded test cell (0 for every other cell)."""
    return float(nbgrader(cell).get("points", 0) or 0) if kind(cell) == "test" else 0.0


def source(cell: Mapping) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text

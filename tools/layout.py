"""Does every chapter have all its parts, and do its headings announce the points its cells hold?

    python -m tools.layout            # prints the problems, exit 1 when there are any

Used by tests/test_layout.py and by the chapter scaffold.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

import nbformat

from autograder import cells
from tools.notebooks import read_source
from vitcourse import course

ROOT = pathlib.Path(__file__).resolve().parent.parent
POINTS = re.compile(r"\((\d+)\s+points?\)")


def announced_points(nb: nbformat.NotebookNode) -> list[str]:
    """Graded cells whose heading does not announce exactly the points they hold.

    A graded cell belongs to the nearest heading above it; that heading must say "(N points)" (several
    such phrases add up), and N must equal the points of all the graded cells under it.
    """
    sections: list[list] = []  # [heading text, announced points or None, graded points]
    for cell in nb.cells:
        if cells.is_written(cell):
            if not sections:
                return [f"written answer {cells.grade_id(cell)!r} comes before any heading"]
            sections[-1][2] += cells.points(cell)
        elif cells.kind(cell) == "markdown":
            for line in cells.source(cell).splitlines():
                if line.startswith("#"):
                    found = POINTS.findall(line)
                    sections.append([line.lstrip("# ").strip(), sum(map(int, found)) if found else None, 0.0])
        elif cells.kind(cell) == "test":
            if not sections:
                return [f"graded cell {cells.grade_id(cell)!r} comes before any heading"]
            sections[-1][2] += cells.points(cell)
    problems = []
    for heading, announced, graded in sections:
        if graded and announced is None:
            problems.append(f"heading '{heading}' holds {graded:g} graded points but announces none: "
                            f"add '({graded:g} points)'")
        elif announced is not None and announced != graded:
            problems.append(f"heading '{heading}' announces {announced} points, its graded cells hold {graded:g}")
    return problems


def problems(chapter: course.Chapter, root: pathlib.Path = ROOT) -> list[str]:
    """Everything missing or inconsistent in one chapter (empty when it is complete)."""
    out = []
    for part in (chapter.source, chapter.source_notebook, chapter.student_notebook, chapter.page,
                 chapter.tests, chapter.module_file):
        if not (root / part).is_file():
            out.append(f"{chapter.id}: {part} is missing")
    if importlib.util.find_spec(chapter.module) is None:
        out.append(f"{chapter.id}: module {chapter.module} cannot be imported")
    text_path, nb_path = root / chapter.source, root / chapter.source_notebook
    if text_path.is_file() or nb_path.is_file():  # the text source is what authors edit; the .ipynb follows it
        nb = read_source(text_path) if text_path.is_file() else nbformat.read(nb_path, as_version=4)
        total = sum(cells.points(c) for c in nb.cells)
        if total != chapter.points:
            out.append(f"{chapter.id}: graded cells hold {total:g} points, the registry says {chapter.points}")
        out += [f"{chapter.id}: {p}" for p in announced_points(nb)]
    return out


def unregistered(root: pathlib.Path = ROOT) -> list[str]:
    """Chapter folders and pages that exist but are not in the registry."""
    known = {c.id for c in course.chapters()}
    found = {p.name for p in (root / "solutions").iterdir() if p.is_dir() and course.ID_PATTERN.match(p.name)}
    found |= {p.name for p in (root / "notebooks").iterdir() if p.is_dir() and course.ID_PATTERN.match(p.name)}
    found |= {p.stem for p in (root / "book").glob("[0-9][0-9]-*.md")}
    return [f"{name} exists but is not in {course.REGISTRY.name}" for name in sorted(found - known)]


def main() -> int:
    found = unregistered() + [p for c in course.chapters() for p in problems(c)]
    print("\n".join(found) or f"{len(course.chapters())} chapters, every part in place")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

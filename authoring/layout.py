"""The layout rules: the parts every chapter has, where they live, and what keeps them consistent.

    python -m authoring layout        # prints the problems, exit 1 when there are any

One list of a chapter's parts serves both sides: ``python3.11 tasks.py new`` (``authoring.scaffold``)
writes every part in ``AUTHORED`` from a template and ``sync`` generates the parts in ``GENERATED``;
tests/test_layout.py checks with ``problems`` that every part exists and that headings announce the
points the graded cells hold. Where each part lives is a property of ``registry.Chapter``. What the
tree says about all chapters at once (the table of contents, the intro's list, the README's count) is
derived from the registry by ``authoring.derived``, so a new chapter needs no edit there.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import re
import sys

import nbformat

from authoring import registry
from authoring.notebooks import read_source
from authoring.registry import ROOT, Chapter
from autograder import cells

# The parts an author writes (the scaffold starts each one), and those generated from them by `sync`.
AUTHORED = ("source", "page", "module_file", "tests", "bugs", "alternatives")
GENERATED = ("source_notebook", "student_notebook")
POINTS = re.compile(r"\((\d+)\s+points?\)")
WRITTEN = re.compile(r"Written answer, (\d+) points?")


def announced_points(nb: nbformat.NotebookNode) -> list[str]:
    """Graded cells whose points are not announced exactly where the student reads.

    A graded code cell belongs to the nearest heading above it; that heading must say "(N points)"
    (several such phrases add up), and N must equal the points of all the graded code cells under it. A
    written answer (a manually graded markdown cell) is announced in the question's text, not in its
    heading: "Written answer, N points", under the same heading, with N its points.
    """
    sections: list[list] = []  # [heading, announced, graded, written announced, written graded]
    for cell in nb.cells:
        if cells.is_written(cell):
            if not sections:
                return [f"written answer {cells.grade_id(cell)!r} comes before any heading"]
            sections[-1][4] += cells.points(cell)
        elif cells.kind(cell) == "markdown":
            for line in cells.source(cell).splitlines():
                if line.startswith("#"):
                    found = POINTS.findall(line)
                    sections.append([line.lstrip("# ").strip(), sum(map(int, found)) if found else None, 0.0, 0, 0.0])
                elif sections:
                    sections[-1][3] += sum(map(int, WRITTEN.findall(line)))
        elif cells.kind(cell) == "test":
            if not sections:
                return [f"graded cell {cells.grade_id(cell)!r} comes before any heading"]
            sections[-1][2] += cells.points(cell)
    problems = []
    for heading, announced, graded, written_announced, written in sections:
        if graded and announced is None:
            problems.append(f"heading '{heading}' holds {graded:g} graded points but announces none: "
                            f"add '({graded:g} points)'")
        elif announced is not None and announced != graded:
            problems.append(f"heading '{heading}' announces {announced} points, its graded cells hold {graded:g}")
        if written_announced != written:
            problems.append(f"under '{heading}' the text announces {written_announced} points of written answers, "
                            f"its answer cells hold {written:g}: write 'Written answer, {written:g} points' "
                            "in the question")
    return problems


def parts(chapter: Chapter) -> dict[str, str]:
    """{part name: path relative to the root} of every part of ``chapter``."""
    return {name: getattr(chapter, name) for name in AUTHORED + GENERATED}


def problems(chapter: Chapter, root: pathlib.Path = ROOT) -> list[str]:
    """Everything missing or inconsistent in one chapter (empty when it is complete)."""
    out = []
    for part in parts(chapter).values():
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
    known = {c.id for c in registry.chapters()}
    found = {p.name for p in (root / "solutions").iterdir() if p.is_dir() and registry.ID_PATTERN.match(p.name)}
    found |= {p.name for p in (root / "notebooks").iterdir() if p.is_dir() and registry.ID_PATTERN.match(p.name)}
    found |= {p.stem for p in (root / "book").glob("[0-9][0-9]-*.md")}
    return [f"{name} exists but is not in {registry.REGISTRY.name}" for name in sorted(found - known)]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    found = unregistered() + [p for c in registry.chapters() for p in problems(c)]
    print("\n".join(found) or f"{len(registry.chapters())} chapters, every part in place")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

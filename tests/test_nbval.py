"""``pytest --nbval-lax solutions/`` (the instructor guide's check of a course copy) collects every solution
notebook's code cells, one nbval item each, and nothing else: not the notebooks' jupytext sources, not
the grading fixtures. Running them is tests/test_full_budget.py's job (the full budget, through
``tasks.py gpu``); here only what an instructor's run would execute."""

import pathlib
import subprocess
import sys

import nbformat

from authoring import registry

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_nbval_collects_the_code_cells_of_every_solution_notebook():
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "--nbval-lax", "-n", "0",
                           "-p", "no:cacheprovider", "solutions/"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    expected = []
    for chapter in registry.chapters():
        nb = nbformat.read(REPO / chapter.source_notebook, as_version=4)
        cells = sum(cell.cell_type == "code" for cell in nb.cells)
        expected += [f"{chapter.source_notebook}::Cell {k}" for k in range(cells)]
    assert collected == expected

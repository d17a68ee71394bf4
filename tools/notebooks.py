"""Chapter notebooks as text: ``solutions/NN-name/NN-name.py`` (jupytext percent format) is the source.

    python -m tools.notebooks sync            # every solutions/*/*.py -> the .ipynb beside it
    python -m tools.notebooks sync --check    # exit 1 when an .ipynb is stale
    python -m tools.notebooks pull solutions/03-vit/03-vit.ipynb   # after editing the .ipynb in Jupyter

The .ipynb beside each source is what nbgrader, the tests and Jupyter open. It is generated: cleared
outputs, stable cell ids (``cell-000``, ...) and stable formatting, so it changes only when the
text changes. Graded cells carry their nbgrader metadata in the cell header, as jupytext writes it:

    # %% nbgrader={"grade": true, "grade_id": "test_patchify", "locked": true, "points": 4, ...}
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jupytext
import nbformat

from autograder import cells
from tools import derived

ROOT = pathlib.Path(__file__).resolve().parent.parent
FORMAT = "py:percent"
# No header in the text, and only the nbgrader part of each cell's metadata.
TEXT_OPTIONS = {"notebook_metadata_filter": "-all", "cell_metadata_filter": "nbgrader"}
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def sources(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """Every notebook source: ``solutions/NN-name/NN-name.py``."""
    return sorted(p for p in (root / "solutions").glob("*/*.py") if p.stem == p.parent.name)


def read_source(path: pathlib.Path) -> nbformat.NotebookNode:
    """A text source as an nbformat notebook with stable ids, the python3 kernel and no outputs."""
    nb = jupytext.read(path, fmt=FORMAT)
    seen: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        grade_id = cells.grade_id(cell)
        if grade_id in seen:
            raise ValueError(f"{path.name}: grade id {grade_id!r} is used by cells {seen[grade_id]} and {i}; "
                             "give each graded or answer cell its own id")
        if grade_id:
            seen[grade_id] = i
    nb.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.validate(nb)
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    """Stable JSON: one formatting for every generated notebook (the release uses it too)."""
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def sync(paths: list[pathlib.Path], check: bool = False) -> list[str]:
    """Write (or, with ``check``, compare) the .ipynb of each source; returns what was stale."""
    return [str(src.with_suffix(".ipynb").relative_to(ROOT)) for src in paths
            if derived.update(src.with_suffix(".ipynb"), dumps(read_source(src)), check)]


def pull(notebook: pathlib.Path) -> pathlib.Path:
    """Write the text source of an .ipynb edited in Jupyter (outputs dropped)."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata = {"jupytext": TEXT_OPTIONS}
    target = notebook.with_suffix(".py")
    jupytext.write(nb, target, fmt=FORMAT)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sync", help="generate each .ipynb from its .py source")
    s.add_argument("paths", nargs="*", type=pathlib.Path, help="sources (default: every solutions/*/*.py)")
    s.add_argument("--check", action="store_true", help="change nothing; exit 1 when stale")
    p = sub.add_parser("pull", help="write the .py source of an .ipynb edited in Jupyter")
    p.add_argument("notebook", type=pathlib.Path)
    args = parser.parse_args(argv)
    if args.command == "pull":
        print(f"wrote {pull(args.notebook)}; now run `python3.11 tasks.py sync`")
        return 0
    paths = [p.resolve() for p in args.paths] or sources()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no such source: {', '.join(missing)}")
    stale = sync(paths, check=args.check)
    verb = "stale (run `python3.11 tasks.py sync`)" if args.check else "written"
    print("\n".join(f"{s}: {verb}" for s in stale) or "every notebook is in sync with its source")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())

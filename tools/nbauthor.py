"""Write chapter notebooks as plain text and turn them into nbgrader source notebooks (and back).

The notebook in ``solutions/`` is the source of truth. This tool only makes writing and editing one
in a text editor pleasant:

    python -m tools.nbauthor dump solutions/01-patches/01-patches.ipynb > /tmp/ch1.txt
    ... edit /tmp/ch1.txt ...
    python -m tools.nbauthor build /tmp/ch1.txt solutions/01-patches/01-patches.ipynb

Text format: cells start with a header line beginning with ``%%``:

    %% md                       a markdown cell
    %% code                     an ordinary code cell (not graded)
    %% solution ID              a code cell the student completes (### BEGIN/END SOLUTION inside)
    %% test ID POINTS           a graded test cell (may contain ### BEGIN/END HIDDEN TESTS)

Everything up to the next header is the cell's source (trailing blank lines dropped).
"""

from __future__ import annotations

import json
import pathlib
import sys

import nbformat

HEADER = "%%"


def _nbgrader(kind: str, grade_id: str | None = None, points: int | None = None) -> dict:
    meta = {"schema_version": 3, "task": False}
    if kind == "solution":
        meta.update(grade=False, solution=True, locked=False, grade_id=grade_id)
    elif kind == "test":
        meta.update(grade=True, solution=False, locked=True, grade_id=grade_id, points=points)
    return {"nbgrader": meta}


def build(text: str) -> nbformat.NotebookNode:
    """Parse the text format into an nbformat v4 notebook with nbgrader metadata."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    header, lines, seen_ids = None, [], set()

    def flush() -> None:
        if header is None:
            return
        source = "\n".join(lines).strip("\n")
        kind, *args = header.split()
        if kind == "md":
            cell = nbformat.v4.new_markdown_cell(source)
        elif kind in ("code", "solution", "test"):
            cell = nbformat.v4.new_code_cell(source)
            if kind != "code":
                if not args:
                    raise ValueError(f"'%% {header}' needs a grade id")
                grade_id = args[0]
                if grade_id in seen_ids:
                    raise ValueError(f"grade id {grade_id!r} is used twice")
                seen_ids.add(grade_id)
                points = int(args[1]) if kind == "test" else None
                cell.metadata.update(_nbgrader(kind, grade_id, points))
        else:
            raise ValueError(f"unknown cell kind {kind!r} in '%% {header}'")
        cell["id"] = f"cell-{len(nb.cells):03d}"  # stable ids keep diffs small
        nb.cells.append(cell)

    for line in text.splitlines():
        if line.startswith(HEADER + " "):
            flush()
            header, lines = line[len(HEADER) + 1:].strip(), []
        else:
            lines.append(line)
    flush()
    nbformat.validate(nb)
    return nb


def dump(nb: nbformat.NotebookNode) -> str:
    """The inverse of ``build``: notebook -> text format."""
    out = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "markdown":
            out.append("%% md")
        elif meta.get("grade") and not meta.get("solution"):
            out.append(f"%% test {meta['grade_id']} {meta.get('points', 0)}")
        elif meta.get("solution"):
            out.append(f"%% solution {meta['grade_id']}")
        else:
            out.append("%% code")
        out.append(cell.source)
        out.append("")
    return "\n".join(out)


def write(nb: nbformat.NotebookNode, path: pathlib.Path) -> None:
    """Write without outputs, with stable formatting (solutions/ is stored cleared)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "build":
        write(build(pathlib.Path(argv[1]).read_text()), pathlib.Path(argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "dump":
        sys.stdout.write(dump(nbformat.read(argv[1], as_version=4)))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Rebuild a student's notebook into a fresh copy of the release.

Colab and other editors can drop nbgrader's cell metadata; students move, insert, delete and
re-type cells. nbgrader grades what it finds, so such a notebook loses points it earned. Repair
matches each cell of the release to the student's notebook:

1. by nbgrader ``grade_id`` (metadata intact);
2. identical cells (same type and source) aligned in order (difflib on the cell lists);
3. the rest by position and content: between the neighbouring matched cells, the student cell most
   similar to the release cell (difflib ratio) is taken.

The output is the release notebook with the student's answers in its answer cells. Test cells and
all other locked cells are the release's (edited or deleted ones are restored); code cells the
student added keep their place (without nbgrader metadata), so helper functions still work.
``report`` says how every answer cell was matched and what was restored or kept.
"""

from __future__ import annotations

import copy
import difflib
import json
import pathlib

import nbformat


def _src(cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _meta(cell) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def is_answer(cell) -> bool:
    m = _meta(cell)
    return bool(m.get("solution")) and not m.get("grade")


def is_graded(cell) -> bool:
    return bool(_meta(cell).get("grade"))


def load_json(path: str | pathlib.Path) -> dict:
    """The notebook's JSON, lenient about version (raises ValueError for unreadable files)."""
    try:
        data = json.loads(pathlib.Path(path).read_bytes().decode("utf-8", errors="replace"))
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError("JSON without a list of cells; not a notebook")
    return data


def repair(student: dict, release: dict) -> tuple[dict, dict]:
    """(repaired notebook, report). Neither input is modified."""
    rel, stu = release["cells"], [c for c in student["cells"] if isinstance(c, dict)]
    pair: dict[int, int] = {}  # release index -> student index
    how: dict[int, str] = {}
    used: set[int] = set()

    # 1. grade ids
    by_id: dict[str, int] = {}
    for j, c in enumerate(stu):
        gid = _meta(c).get("grade_id")
        if gid and gid not in by_id:
            by_id[gid] = j
    for i, c in enumerate(rel):
        gid = _meta(c).get("grade_id")
        if gid and gid in by_id and by_id[gid] not in used:
            pair[i], how[i] = by_id[gid], "grade_id"
            used.add(by_id[gid])

    # 2. identical cells, in order
    key = lambda c: (c.get("cell_type"), _src(c).strip())
    sm = difflib.SequenceMatcher(None, [key(c) for c in rel], [key(c) for c in stu], autojunk=False)
    for block in sm.get_matching_blocks():
        for k in range(block.size):
            i, j = block.a + k, block.b + k
            if i not in pair and j not in used and _consistent(pair, i, j):
                pair[i], how[i] = j, "identical"
                used.add(j)

    # 3. answer and test cells left: by position and content between matched neighbours
    for i, c in enumerate(rel):
        if i in pair or not (is_answer(c) or is_graded(c)):
            continue
        lo = max((pair[k] for k in pair if k < i), default=-1)
        hi = min((pair[k] for k in pair if k > i), default=len(stu))
        window = [j for j in range(lo + 1, hi) if j not in used]
        if not window:
            continue
        scores = {j: difflib.SequenceMatcher(None, _src(c), _src(stu[j]), autojunk=False).ratio()
                  + (0.05 if stu[j].get("cell_type") == "code" else 0.0) for j in window}
        best = max(window, key=lambda j: (scores[j], -j))
        if is_answer(c):
            # any cell will do when it is the only candidate; otherwise it must resemble the stub
            if len(window) == 1 or scores[best] >= 0.2:
                pair[i] = best
                how[i] = "position" if len(window) == 1 else f"content ({scores[best]:.2f})"
                used.add(best)
        elif scores[best] >= 0.5:  # an edited test cell: consumed, the release version is used
            pair[i], how[i] = best, f"content ({scores[best]:.2f})"
            used.add(best)

    # Build the fresh copy.
    out = copy.deepcopy(release)
    out_cells = []
    report = {"answers": {}, "tests_restored": [], "tests_edited": [], "type_changed": [],
              "extra_cells_kept": 0, "extra_cells_dropped": 0}
    after: dict[int, list] = {}  # student cells to insert after release index (-1: at the top)
    matched_stu = sorted((j, i) for i, j in pair.items())
    for j, c in enumerate(stu):
        if j in used:
            continue
        prev = [i for jj, i in matched_stu if jj < j]
        anchor = prev[-1] if prev else -1
        if c.get("cell_type") == "code" and _src(c).strip():
            extra = nbformat.v4.new_code_cell(_src(c))
            after.setdefault(anchor, []).append(extra)
            report["extra_cells_kept"] += 1
        else:
            report["extra_cells_dropped"] += 1
    out_cells += after.get(-1, [])
    for i, c in enumerate(rel):
        new = copy.deepcopy(c)
        gid = _meta(c).get("grade_id")
        if is_answer(c):
            if i in pair:
                s = stu[pair[i]]
                new["source"] = _src(s)
                if s.get("cell_type") != c.get("cell_type"):
                    report["type_changed"].append(gid)
                report["answers"][gid] = how[i]
            else:
                report["answers"][gid] = "missing (release stub used)"
        elif is_graded(c):
            if i not in pair:
                report["tests_restored"].append(gid)
            elif _src(stu[pair[i]]).strip() != _src(c).strip():
                report["tests_edited"].append(gid)
        if new.get("cell_type") == "code":
            new["outputs"], new["execution_count"] = [], None
        out_cells.append(new)
        out_cells += after.get(i, [])
    out["cells"] = out_cells
    report["repaired"] = bool(
        report["tests_restored"] or report["tests_edited"] or report["type_changed"]
        or report["extra_cells_kept"]
        or any(v != "grade_id" for v in report["answers"].values())
    )
    return out, report


def _consistent(pair: dict[int, int], i: int, j: int) -> bool:
    """Keep the mapping monotone: release order and student order agree."""
    return all((a < i) == (b < j) for a, b in pair.items())


def repair_file(original: pathlib.Path, release_path: pathlib.Path, dest: pathlib.Path) -> dict:
    """Repair ``original`` into ``dest`` (the original is only read). Returns the report."""
    release = load_json(release_path)
    student = load_json(original)
    fixed, report = repair(student, release)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.from_dict(fixed), str(dest))
    return report

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
import dataclasses
import difflib
import pathlib
from dataclasses import dataclass, field

import nbformat

from autograder import cells
from autograder.cells import grade_id, source


@dataclass
class RepairReport:
    """How a student's notebook was matched to the release."""

    answers: dict[str, str] = field(default_factory=dict)  # answer id -> how it was found
    tests_restored: list[str] = field(default_factory=list)  # test cells missing, put back
    tests_edited: list[str] = field(default_factory=list)  # test cells edited, release version used
    type_changed: list[str] = field(default_factory=list)  # answers turned into another cell type
    extra_cells_kept: int = 0
    extra_cells_dropped: int = 0
    repaired: bool = False

    def describe(self) -> list[str]:
        bits = [f"{k} matched by {v}" for k, v in self.answers.items() if v != "grade_id"]
        bits += [f"test cell {t} restored" for t in self.tests_restored]
        bits += [f"test cell {t} was edited" for t in self.tests_edited]
        bits += [f"{t} changed type" for t in self.type_changed]
        if self.extra_cells_kept:
            bits.append(f"{self.extra_cells_kept} added code cell(s) kept")
        return bits

    @classmethod
    def from_dict(cls, data: dict) -> RepairReport:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def repair(student: dict, release: dict) -> tuple[dict, RepairReport]:
    """(repaired notebook, report). Neither input is modified."""
    rel, stu = release["cells"], [c for c in student["cells"] if isinstance(c, dict)]
    pair: dict[int, int] = {}  # release index -> student index
    how: dict[int, str] = {}
    used: set[int] = set()

    # 1. grade ids
    by_id: dict[str, int] = {}
    for j, c in enumerate(stu):
        gid = grade_id(c)
        if gid and gid not in by_id:
            by_id[gid] = j
    for i, c in enumerate(rel):
        gid = grade_id(c)
        if gid and gid in by_id and by_id[gid] not in used:
            pair[i], how[i] = by_id[gid], "grade_id"
            used.add(by_id[gid])

    # 2. identical cells, in order
    key = lambda c: (c.get("cell_type"), source(c).strip())
    sm = difflib.SequenceMatcher(None, [key(c) for c in rel], [key(c) for c in stu], autojunk=False)
    for block in sm.get_matching_blocks():
        for k in range(block.size):
            i, j = block.a + k, block.b + k
            if i not in pair and j not in used and _consistent(pair, i, j):
                pair[i], how[i] = j, "identical"
                used.add(j)

    # 3. answer and test cells left: by position and content between matched neighbours
    for i, c in enumerate(rel):
        if i in pair or not (cells.is_solution(c) or cells.is_test(c)):
            continue
        lo = max((pair[k] for k in pair if k < i), default=-1)
        hi = min((pair[k] for k in pair if k > i), default=len(stu))
        window = [j for j in range(lo + 1, hi) if j not in used]
        if not window:
            continue
        scores = {j: difflib.SequenceMatcher(None, source(c), source(stu[j]), autojunk=False).ratio()
                  + (0.05 if stu[j].get("cell_type") == "code" else 0.0) for j in window}
        best = max(window, key=lambda j: (scores[j], -j))
        if cells.is_solution(c):
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
    report = RepairReport()
    after: dict[int, list] = {}  # student cells to insert after release index (-1: at the top)
    matched_stu = sorted((j, i) for i, j in pair.items())
    for j, c in enumerate(stu):
        if j in used:
            continue
        prev = [i for jj, i in matched_stu if jj < j]
        anchor = prev[-1] if prev else -1
        if c.get("cell_type") == "code" and source(c).strip():
            extra = nbformat.v4.new_code_cell(source(c))
            after.setdefault(anchor, []).append(extra)
            report.extra_cells_kept += 1
        else:
            report.extra_cells_dropped += 1
    out_cells += after.get(-1, [])
    for i, c in enumerate(rel):
        new = copy.deepcopy(c)
        gid = grade_id(c)
        if cells.is_solution(c):
            if i in pair:
                s = stu[pair[i]]
                new["source"] = source(s)
                if s.get("cell_type") != c.get("cell_type"):
                    report.type_changed.append(gid)
                report.answers[gid] = how[i]
            else:
                report.answers[gid] = "missing (release stub used)"
        elif cells.is_test(c):
            if i not in pair:
                report.tests_restored.append(gid)
            elif source(stu[pair[i]]).strip() != source(c).strip():
                report.tests_edited.append(gid)
        if new.get("cell_type") == "code":
            new["outputs"], new["execution_count"] = [], None
        out_cells.append(new)
        out_cells += after.get(i, [])
    out["cells"] = out_cells
    report.repaired = bool(
        report.tests_restored or report.tests_edited or report.type_changed or report.extra_cells_kept
        or any(v != "grade_id" for v in report.answers.values())
    )
    return out, report


def _consistent(pair: dict[int, int], i: int, j: int) -> bool:
    """Keep the mapping monotone: release order and student order agree."""
    return all((a < i) == (b < j) for a, b in pair.items())


def repair_file(original: pathlib.Path, release: dict, dest: pathlib.Path) -> tuple[dict, RepairReport]:
    """Repair ``original`` into ``dest`` (the original is only read). Returns (notebook, report).

    Raises ``ValueError`` (or ``UnicodeError``) for a file that is not a readable notebook."""
    fixed, report = repair(cells.read(original), release)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.from_dict(fixed), str(dest))
    return fixed, report

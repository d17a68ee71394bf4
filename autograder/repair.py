"""Rebuild a student's notebook into a fresh copy of the release.

Colab and other editors can drop nbgrader's cell metadata; students move, insert, delete and
re-type cells. nbgrader grades what it finds, so such a notebook loses points it earned. Repair
matches each cell of the release to the student's notebook, one function per stage:

1. ``match_grade_ids``: by nbgrader ``grade_id`` (metadata intact);
2. ``match_identical``: identical cells (same type and source) aligned in order (difflib on the
   cell lists);
3. ``match_by_content``: the rest by position and content: between the neighbouring matched cells,
   the student cell most similar to the release cell (difflib ratio) is taken;
4. ``rebuild``: the repaired notebook and its report.

The output is the release notebook with the student's answers in its answer cells. Test cells and
all other locked cells are the release's (edited or deleted ones are restored); code cells the
student added keep their place (without nbgrader metadata), so helper functions still work.
``report`` says how every answer cell was matched and what was restored or kept.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
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


@dataclass
class Matching:
    """Release cell index -> student cell index, and how each pair was found."""

    pair: dict[int, int] = field(default_factory=dict)
    how: dict[int, str] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)  # student cells already matched

    def add(self, i: int, j: int, how: str) -> None:
        self.pair[i], self.how[i] = j, how
        self.used.add(j)


def repair(student: dict, release: dict) -> tuple[dict, RepairReport]:
    """(repaired notebook, report). Neither input is modified."""
    rel, stu = release["cells"], [c for c in student["cells"] if isinstance(c, dict)]
    m = Matching()
    match_grade_ids(rel, stu, m)
    match_identical(rel, stu, m)
    match_by_content(rel, stu, m)
    return rebuild(release, stu, m)


def match_grade_ids(rel: list[dict], stu: list[dict], m: Matching) -> None:
    """Stage 1: cells whose nbgrader metadata survived, by grade id (a student's first copy wins)."""
    by_id: dict[str, int] = {}
    for j, c in enumerate(stu):
        gid = grade_id(c)
        if gid and gid not in by_id:
            by_id[gid] = j
    for i, c in enumerate(rel):
        gid = grade_id(c)
        if gid and gid in by_id and by_id[gid] not in m.used:
            m.add(i, by_id[gid], "grade_id")


def match_identical(rel: list[dict], stu: list[dict], m: Matching) -> None:
    """Stage 2: identical cells (type and source), aligned in order, never crossing a match."""
    key = lambda c: (c.get("cell_type"), source(c).strip())
    sm = difflib.SequenceMatcher(None, [key(c) for c in rel], [key(c) for c in stu], autojunk=False)
    for block in sm.get_matching_blocks():
        for k in range(block.size):
            i, j = block.a + k, block.b + k
            if i not in m.pair and j not in m.used and _consistent(m.pair, i, j):
                m.add(i, j, "identical")


def match_by_content(rel: list[dict], stu: list[dict], m: Matching) -> None:
    """Stage 3: answer and test cells left, by position and content between matched neighbours."""
    for i, c in enumerate(rel):
        if i in m.pair or not (cells.is_solution(c) or cells.is_test(c)):
            continue
        lo = max((m.pair[k] for k in m.pair if k < i), default=-1)
        hi = min((m.pair[k] for k in m.pair if k > i), default=len(stu))
        window = [j for j in range(lo + 1, hi) if j not in m.used]
        if not window:
            continue
        scores = {j: difflib.SequenceMatcher(None, source(c), source(stu[j]), autojunk=False).ratio()
                  + (0.05 if stu[j].get("cell_type") == c.get("cell_type") else 0.0) for j in window}
        best = max(window, key=lambda j: (scores[j], -j))
        if cells.is_solution(c):
            # any cell will do when it is the only candidate; otherwise it must resemble the stub
            if len(window) == 1 or scores[best] >= 0.2:
                m.add(i, best, "position" if len(window) == 1 else f"content ({scores[best]:.2f})")
        elif scores[best] >= 0.5:  # an edited test cell: consumed, the release version is used
            m.add(i, best, f"content ({scores[best]:.2f})")


def rebuild(release: dict, stu: list[dict], m: Matching) -> tuple[dict, RepairReport]:
    """Stage 4: a fresh copy of the release with the student's answers in its answer cells and the
    student's own code cells kept after the cell they followed."""
    rel = release["cells"]
    report = RepairReport()
    after: dict[int, list] = {}  # student cells to insert after release index (-1: at the top)
    matched_stu = sorted((j, i) for i, j in m.pair.items())
    for j, c in enumerate(stu):
        if j in m.used:
            continue
        prev = [i for jj, i in matched_stu if jj < j]
        anchor = prev[-1] if prev else -1
        if c.get("cell_type") == "code" and source(c).strip():
            after.setdefault(anchor, []).append(nbformat.v4.new_code_cell(source(c)))
            report.extra_cells_kept += 1
        else:
            report.extra_cells_dropped += 1
    out_cells = list(after.get(-1, []))
    for i, c in enumerate(rel):
        new = copy.deepcopy(c)
        gid = grade_id(c)
        if cells.is_solution(c):
            if i in m.pair:
                s = stu[m.pair[i]]
                new["source"] = source(s)
                if s.get("cell_type") != c.get("cell_type"):
                    report.type_changed.append(gid)
                report.answers[gid] = m.how[i]
            else:
                report.answers[gid] = "missing (release stub used)"
        elif cells.is_test(c):
            if i not in m.pair:
                report.tests_restored.append(gid)
            elif source(stu[m.pair[i]]).strip() != source(c).strip():
                report.tests_edited.append(gid)
        if new.get("cell_type") == "code":
            new["outputs"], new["execution_count"] = [], None
        out_cells.append(new)
        out_cells += after.get(i, [])
    out = copy.deepcopy(release)
    out["cells"] = out_cells
    report.repaired = bool(
        report.tests_restored or report.tests_edited or report.type_changed or report.extra_cells_kept
        or any(v != "grade_id" for v in report.answers.values())
    )
    return out, report


def _consistent(pair: dict[int, int], i: int, j: int) -> bool:
    """Keep the mapping monotone: release order and student order agree."""
    return all((a < i) == (b < j) for a, b in pair.items())

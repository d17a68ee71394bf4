"""Robustness suite: the real nbgrader grades many broken submissions in one batch per chapter.

Every case (see ``grading_cases.py``) asserts its outcome: exact score, status, flags, timeouts,
memory limit; and after each run every collected original is byte-identical. Cases are batched
(one workspace, one grading run per chapter, two workers) because each nbgrader command costs
~5 s to start.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import pathlib
import sys

import pytest

from autograder.collect import collect
from autograder.export import export
from autograder.feedback import feedback
from autograder.grade import grade
from autograder.workspace import Workspace
from grading_cases import robustness_cases

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURE_COURSE = pathlib.Path(__file__).resolve().parent / "fixtures" / "course"
CELL_TIMEOUT_S = 20
MEMORY_MB = 5000


def relu_clamp_max(x):
    """Keeps the negative part."""
    return x.clamp(max=0)


def softmax_unstable(x, dim=-1):
    """No max subtraction: overflows on large inputs."""
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)


TOY_BUGS = {
    "relu: negative part": ({"relu": relu_clamp_max}, {"test_relu"}),
    "softmax: unstable": ({"softmax": softmax_unstable}, {"test_softmax"}),
}


def chapter_bugs(module_file: str) -> dict:
    """A chapter test module's BUGS (plausible student bugs), imported from tests/chapters/."""
    sys.path.insert(0, str(REPO / "tests" / "chapters"))
    spec = importlib.util.spec_from_file_location(f"_bugs_{pathlib.Path(module_file).stem}",
                                                  REPO / "tests" / "chapters" / module_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.BUGS


def run_batch(tmp: pathlib.Path, course: pathlib.Path, assignment: str, bugs: dict, reference):
    """Collect every case for ``assignment`` as one class, grade with 2 workers, export."""
    ws = Workspace.create(tmp / "ws", course, cell_timeout_s=CELL_TIMEOUT_S, kernel_memory_mb=MEMORY_MB)
    source = json.loads((course / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    release = json.loads(ws.release(assignment).read_text())
    cases = robustness_cases(assignment, source, release, bugs, reference)
    downloads = tmp / "downloads"
    hashes = {}
    for student, case in cases.items():
        path = downloads / student / case.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.content)
        hashes[path] = hashlib.sha256(case.content).hexdigest()
    roster = tmp / "roster.csv"
    roster.write_text("student_id\n" + "\n".join(cases) + "\n")
    intake = collect(ws, downloads, roster)
    assert sorted(k.split("/")[0] for k in intake["collected"]) == sorted(cases)
    assert intake["unplaced"] == []
    records = grade(ws, assignment, jobs=2)
    feedback(ws, assignment)
    grades_csv, human_csv = export(ws)
    for path, digest in hashes.items():  # the instructor's downloads and the workspace copies
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
    assert ws.verify_originals() == []
    return ws, cases, records, grades_csv, human_csv


def check_outcomes(ws, cases, records, grades_csv, human_csv):
    problems = []
    for student, case in cases.items():
        r = records[student]
        got = (r["status"], r["score"])
        if r["status"] != case.expect_status:
            problems.append(f"{student}: status {r['status']} ({r.get('detail')}), expected {case.expect_status}")
        if case.expect_score is not None and abs(r["score"] - case.expect_score) > 1e-9:
            problems.append(f"{student}: score {r['score']}, expected {case.expect_score}; errors {r['errors']}")
        for cell in case.expect_zero_cells:
            if r["cells"].get(cell) != 0:
                problems.append(f"{student}: {cell} scored {r['cells'].get(cell)}, the bug must lose it")
        if case.expect_zero_cells and r["score"] >= r["max_score"]:
            problems.append(f"{student}: full marks despite the bug")
        if case.expect_flag and not any(case.expect_flag in f for f in r["flags"]):
            problems.append(f"{student}: not flagged ({r['flags']})")
        if not case.expect_flag and r["flags"]:
            problems.append(f"{student}: unexpected flags {r['flags']}")
        if case.expect_timeout != bool(r["timeouts"]):
            problems.append(f"{student}: timeouts {r['timeouts']}")
        if case.expect_memory != bool(r["memory_errors"]):
            problems.append(f"{student}: memory errors {r['memory_errors']} {r['errors']}")
        if case.expect_repaired is not None and r["status"] == "graded" and \
                bool(r["repair"]["repaired"]) != case.expect_repaired:
            problems.append(f"{student}: repaired={r['repair']['repaired']} ({r['repair']})")
        del got
    assert not problems, "\n".join(problems)

    # the gradebook: exactly one submission per graded student, none lost or duplicated
    from nbgrader.api import Gradebook
    assignment = next(iter(records.values()))["assignment"]
    with Gradebook(ws.db_url) as gb:
        subs = [s.student.id for s in gb.find_assignment(assignment).submissions]
        n_cells = len(gb.find_assignment(assignment).notebooks[0].grade_cells)
        n_grades = sum(len(nb.grades) for s in gb.find_assignment(assignment).submissions for nb in s.notebooks)
    expected = sorted(s for s, r in records.items() if r["status"] != "corrupt")
    assert sorted(subs) == expected
    assert n_grades == n_cells * len(expected)

    rows = list(csv.DictReader(open(grades_csv)))
    assert {r["student"] for r in rows if r["assignment"] == assignment} == set(cases)
    human = {r["student"] for r in csv.DictReader(open(human_csv))}
    for must in ("corrupt", "os-exit", "infinite-loop", "huge-alloc", "monkeypatch", "reference", "stripped"):
        assert must in human, must
    assert "solution" not in human and "renamed" not in human

    # feedback: scores and errors kept, hidden test code removed
    for student, r in records.items():
        if r["status"] != "graded":
            continue
        html = (ws.root / "feedback" / student / assignment / f"{assignment}.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in html and "hidden tests: run by the grader" in html


def test_toy_assignment(tmp_path):
    ws, cases, records, grades_csv, human_csv = run_batch(
        tmp_path, FIXTURE_COURSE, "toy", TOY_BUGS, ("patchify", "from vitcourse.models.patches import patchify"))
    check_outcomes(ws, cases, records, grades_csv, human_csv)
    # a regrade of some students, in parallel, replaces their submissions: nothing lost or doubled
    again = grade(ws, "toy", jobs=2, students=["partial", "solution", "os-exit"])
    assert {s: r["score"] for s, r in again.items()} == {"partial": 2.0, "solution": 10.0, "os-exit": 0.0}
    records.update(again)
    check_outcomes(ws, cases, records, grades_csv, human_csv)


@pytest.mark.parametrize("chapter, bugs_module, reference", [
    ("01-patches", "test_01_patches.py", ("patchify", "from vitcourse.models.patches import patchify")),
    ("02-position", "test_02_position.py", ("pool", "from vitcourse.models.position import pool")),
])
def test_chapter(tmp_path, chapter, bugs_module, reference):
    check_outcomes(*run_batch(tmp_path, REPO, chapter, chapter_bugs(bugs_module), reference))

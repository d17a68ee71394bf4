"""Robustness suite: the real nbgrader grades broken, hostile and renamed submissions, every chapter.

The chapters are the registry's (a new one is covered without editing this file; they are the ones the
grader finds in ``solutions/``, and each has a plausible bug to grade: test_robustness_inputs.py). Per
chapter, all cases (``grading_cases.py``) are students of one class, collected once and graded in ONE
``grade --jobs 2`` run, because each nbgrader command costs ~5 s to start and kernels run in parallel.
Every chapter gets: the solution (full marks), the release (0), a partial submission (exact score), a
corrupt file, one student with every kind of structural damage at once (metadata stripped, a test cell
deleted and one edited, an answer turned into markdown, cells added, the file renamed: full marks), one
plausible bug from the chapter's ``BUGS`` (the first that can be pasted; every chapter must have one;
the answers after it left as stubs, so the rest of the notebook fails fast), and one student who cheats
in every way the flags know (flagged). Only the solution and the damaged copy run every cell in full.
The toy course adds the expensive hostile cases (infinite loop, 8 GB, os._exit, 50 MB of output) and one
student per kind of damage.
After each run every original is byte-identical and the gradebook holds one submission per student.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pathlib
import resource
import time

import pytest

from authoring import registry
from autograder.cli import main
from autograder.collect import collect
from autograder.export import export
from autograder.feedback import feedback
from autograder.grade import grade
from autograder.record import Submission
from autograder.workspace import Workspace, source_notebook

from grading_cases import (
    basic_cases,
    bug_case,
    cheat_cases,
    hostile_cases,
    plausible_bugs,
    structural_cases,
    write_class,
)

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURE_COURSE = pathlib.Path(__file__).resolve().parent / "fixtures" / "course"
TOY_CELL_TIMEOUT_S = 20  # the toy's infinite loop is interrupted after this
CHAPTER_CELL_TIMEOUT_S = 300  # chapters' training cells run for tens of seconds on a busy machine
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


def toy_cases(name, source, release):
    cases = {**basic_cases(name, source, release), **structural_cases(name, source, release, separate=True),
             **structural_cases(name, source, release, separate=False), **hostile_cases(name, source, release),
             **cheat_cases(name, source, release, cheap=False)}
    for k, (label, bug) in enumerate(sorted(TOY_BUGS.items())):
        cases[f"bug{k:02d}"] = bug_case(name, source, release, {label: bug})["bug"]
    return cases


def chapter_cases(name, source, release):
    bugs_file = REPO / registry.chapter(name).bugs
    bug = bug_case(name, source, release, plausible_bugs(bugs_file))
    assert bug, f"{name}: no plausible bug of {bugs_file.name} can be pasted into the notebook and graded"
    return {**basic_cases(name, source, release), **structural_cases(name, source, release, separate=False),
            **bug, **cheat_cases(name, source, release, cheap=True)}


def _children_cpu() -> float:
    """CPU seconds of finished child processes (nbgrader and the kernels it ran): unlike the wall
    time, it does not grow when other work shares the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_batch(tmp: pathlib.Path, course: pathlib.Path, assignment: str, make_cases, with_feedback: bool,
              timeout_s: int):
    """Collect every case for ``assignment`` as one class, grade with 2 workers, export (and feedback)."""
    ws = Workspace.create(tmp / "ws", course, cell_timeout_s=timeout_s, kernel_memory_mb=MEMORY_MB)
    source = source_notebook(course, assignment)
    released = course / "notebooks" / assignment / f"{assignment}.ipynb"  # in sync: tests/test_notebooks.py
    release = json.loads((released if released.exists() else ws.release(assignment)).read_text())
    cases = make_cases(assignment, source, release)
    downloads, roster = write_class(tmp, cases)
    hashes = {downloads / s / c.filename: hashlib.sha256(c.content).hexdigest() for s, c in cases.items()}
    intake = collect(ws, downloads, roster)
    assert sorted(k.split("/")[0] for k in intake["collected"]) == sorted(cases)
    assert intake["unplaced"] == []
    t0, cpu0 = time.perf_counter(), _children_cpu()
    records = grade(ws, assignment, jobs=2)
    print(f"{assignment}: {len(cases)} cases graded in {time.perf_counter() - t0:.0f} s "
          f"(CPU {_children_cpu() - cpu0:.0f} s, load {os.getloadavg()[0]:.1f})")
    if with_feedback:
        feedback(ws, assignment)
    grades_csv, human_csv = export(ws)
    for path, digest in hashes.items():  # the instructor's downloads and the workspace copies
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
    assert ws.verify_originals() == []
    return ws, cases, records, grades_csv, human_csv


def problems_of(cases, records) -> list[str]:
    problems = []
    for student, case in cases.items():
        r = records[student]
        if r.status != case.expect_status:
            problems.append(f"{student}: status {r.status} ({r.detail}), expected {case.expect_status}")
        if case.expect_score is not None and abs(r.score - case.expect_score) > 1e-9:
            problems.append(f"{student}: score {r.score}, expected {case.expect_score}; errors {r.errors}")
        for cell in case.expect_zero_cells:
            if r.cells.get(cell) != 0:
                problems.append(f"{student}: {cell} scored {r.cells.get(cell)}, the bug must lose it")
        if case.expect_zero_cells and r.score >= r.max_score:
            problems.append(f"{student}: full marks despite the bug")
        missing = [f for f in case.expect_flags if not any(f in got for got in r.flags)]
        if missing or (r.flags and not case.expect_flags):
            problems.append(f"{student}: flags {r.flags}, expected {case.expect_flags}")
        if case.expect_timeout != bool(r.timeouts):
            problems.append(f"{student}: timeouts {r.timeouts}")
        if case.expect_memory != bool(r.memory_errors):
            problems.append(f"{student}: memory errors {r.memory_errors} {r.errors}")
        if case.expect_repaired is not None and r.status == "graded" and r.repair.repaired != case.expect_repaired:
            problems.append(f"{student}: repaired={r.repair.repaired} ({r.repair})")
    return problems


def check_outcomes(ws, cases, records, grades_csv, human_csv):
    problems = problems_of(cases, records)
    assert not problems, "\n".join(problems)

    # the gradebook: exactly one submission per graded student, none lost or duplicated
    from nbgrader.api import Gradebook
    assignment = next(iter(records.values())).assignment
    with Gradebook(ws.db_url) as gb:
        subs = [s.student.id for s in gb.find_assignment(assignment).submissions]
        n_cells = len(gb.find_assignment(assignment).notebooks[0].grade_cells)
        n_grades = sum(len(nb.grades) for s in gb.find_assignment(assignment).submissions for nb in s.notebooks)
    expected = sorted(s for s, r in records.items() if r.status != "corrupt")
    assert sorted(subs) == expected
    assert n_grades == n_cells * len(expected)

    rows = list(csv.DictReader(open(grades_csv)))
    assert {r["student"] for r in rows if r["assignment"] == assignment} == set(cases)
    assert {r["student"]: float(r["score"]) for r in rows if r["assignment"] == assignment} == \
        {s: r.score for s, r in records.items()}
    human = {r["student"] for r in csv.DictReader(open(human_csv))}
    must = {s for s, c in cases.items() if c.expect_flags or c.expect_status != "graded" or c.expect_repaired
            or c.expect_timeout or c.expect_memory}
    assert must <= human, must - human
    assert "solution" not in human and "renamed" not in human



def check_feedback(ws, records):
    """Scores and errors kept, hidden test code removed."""
    for student, r in records.items():
        if r.status != "graded":
            continue
        html = (ws.root / "feedback" / student / r.assignment / f"{r.assignment}.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in html and "hidden tests: run by the grader" in html


def test_toy_assignment(tmp_path, capsys):
    ws, cases, records, grades_csv, human_csv = run_batch(tmp_path, FIXTURE_COURSE, "toy", toy_cases, True,
                                                          TOY_CELL_TIMEOUT_S)
    check_outcomes(ws, cases, records, grades_csv, human_csv)
    check_feedback(ws, records)
    # a regrade of some students, in parallel, from the command line, replaces their submissions:
    # nothing lost or doubled; the crash makes the command exit with status 1
    again = ["partial", "solution", "os-exit"]
    assert main(["-w", str(ws.root), "grade", "toy", "--jobs", "2", *(f"--student={s}" for s in again)]) == 1
    assert "os-exit (crashed)" in capsys.readouterr().err
    for s in again:
        records[s] = Submission.load(ws.root / "reports" / "toy" / f"{s}.json")
    assert {s: records[s].score for s in again} == {"partial": 2.0, "solution": 10.0, "os-exit": 0.0}
    check_outcomes(ws, cases, records, *export(ws))


@pytest.mark.parametrize("chapter", [c.id for c in registry.chapters()])
def test_chapter(tmp_path, chapter):
    check_outcomes(*run_batch(tmp_path, REPO, chapter, chapter_cases, False, CHAPTER_CELL_TIMEOUT_S))

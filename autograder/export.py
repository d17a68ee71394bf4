"""Exports: the grades CSV and the list of submissions that need a human.

``exports/grades.csv``: one row per student and assignment (score, max, status, and the written
answers still waiting for a person: their points are not in the score yet), then one ``TOTAL``
row per student. Scores come from the gradebook, so grades written by other graders sharing it
(a PostgreSQL gradebook) and changes made by hand in nbgrader's formgrader are included; this
workspace's reports add the status of the submissions it graded. A student known to the workspace
or the gradebook who handed nothing in for a graded assignment gets status ``missing``, score 0.
``exports/needs_human.csv``: every submission this workspace graded that was flagged, repaired,
timed out, hit the memory limit, crashed or could not be read, or whose written answers wait for a
person (``autograder written``), with the reasons.
"""

from __future__ import annotations

import csv

from autograder import gradebook
from autograder.record import Submission
from autograder.workspace import Workspace


def export(ws: Workspace) -> tuple[str, str]:
    """Write the two CSV files; returns their paths."""
    records = {(r.student, r.assignment): r for r in
               (Submission.load(p) for p in sorted((ws.root / "reports").glob("*/*.json")))}
    rows: dict[tuple[str, str], Submission] = {}
    for sc in gradebook.scores(ws.db_url):
        mine = records.get((sc.student, sc.assignment))
        if mine is None:  # graded by someone else sharing the gradebook
            mine = Submission(sc.student, sc.assignment, status="graded")
        if mine.status == "graded":  # the gradebook has the last word (formgrader edits, written scores)
            mine.score, mine.waiting = sc.score, sc.waiting
        mine.max_score = sc.max_score
        rows[(sc.student, sc.assignment)] = mine
    for key, r in records.items():
        rows.setdefault(key, r)  # corrupt files have no gradebook entry
    graded = {a: r.max_score for (_, a), r in rows.items()}
    students = set(ws.students()) | set(gradebook.student_ids(ws.db_url)) | {s for s, _ in rows}
    for student in students:
        for assignment, max_score in graded.items():
            rows.setdefault((student, assignment), Submission(student, assignment, status="missing",
                                                              max_score=max_score))

    out_dir = ws.root / "exports"
    out_dir.mkdir(exist_ok=True)
    grades, human = out_dir / "grades.csv", out_dir / "needs_human.csv"
    totals: dict[str, list[float]] = {}
    with grades.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", "score", "max_score", "status", "needs_human", "waiting_for_a_person"])
        for (student, assignment), r in sorted(rows.items()):
            w.writerow([student, assignment, f"{r.score:g}", f"{r.max_score:g}", r.status,
                        "yes" if r.reasons() else "no", " ".join(r.waiting)])
            t = totals.setdefault(student, [0.0, 0.0])
            t[0] += r.score
            t[1] += r.max_score
        for student, (score, max_score) in sorted(totals.items()):
            w.writerow([student, "TOTAL", f"{score:g}", f"{max_score:g}", "", "", ""])
    with human.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", "status", "score", "reasons"])
        for (student, assignment), r in sorted(rows.items()):
            if r.reasons():
                w.writerow([student, assignment, r.status, f"{r.score:g}", " | ".join(r.reasons())])
    return str(grades), str(human)

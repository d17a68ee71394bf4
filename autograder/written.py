"""Written answers: scored by a person, through a CSV round trip (or nbgrader's formgrader).

``grade`` scores the code; a written answer (``autograder.cells.is_written``) waits for a person,
except an unanswered one, which nbgrader scores 0 itself ("No response."). Then:

    autograder written 03-vit                 # exports/written-03-vit.csv: one row per student and question
    autograder written --import FILE.csv      # the scores (and comments) into the gradebook

The CSV has the columns ``COLUMNS``: who and which question, the points it is worth, ``score`` and
``comment`` (filled in by the grader; a score already given is filled in again on a new export),
then what the grader reads: the student's answer, the question, the model answer and the rubric.
Rows whose score is left empty are skipped on import (their answers keep waiting). The import
checks every row first and changes nothing when one is wrong: each bad row is named with its line.

A regrade keeps a person's score of a written answer whose text did not change (``unchanged``).
"""

from __future__ import annotations

import csv
import math
import pathlib

from autograder import cells, gradebook
from autograder.errors import GraderError
from autograder.workspace import Workspace, source_notebook

COLUMNS = ["student", "assignment", "question", "max_points", "score", "comment", "status", "answer",
           "question_text", "model_answer", "rubric"]
MAX_ERRORS_SHOWN = 20


def graded_notebook(root: pathlib.Path, student: str, assignment: str) -> pathlib.Path:
    """Where a workspace, shard or worker folder ``root`` keeps a student's graded notebook."""
    return root / "autograded" / student / assignment / f"{assignment}.ipynb"


def answers_in(path: pathlib.Path) -> dict[str, str]:
    """{question id: the student's text} of the written answers in a graded notebook ({} if none)."""
    if not path.is_file():
        return {}
    try:
        nb = cells.read(path)
    except ValueError:
        return {}
    return {gid: cells.source(c).strip() for gid, c in cells.written(nb).items()}


def unchanged(old: pathlib.Path, new: pathlib.Path) -> set[str]:
    """Questions whose written answer is the same in two graded notebooks of one student."""
    before, after = answers_in(old), answers_in(new)
    return {gid for gid, text in after.items() if before.get(gid) == text}


def export_csv(ws: Workspace, assignment: str, out: pathlib.Path | None = None) -> tuple[pathlib.Path, int, int]:
    """Write the written answers of every graded student. Returns (path, rows, rows still waiting)."""
    ws.check_assignment(assignment)
    source = source_notebook(ws.course, assignment)
    questions = cells.written(source)
    if not questions:
        raise GraderError(f"{assignment} has no written questions (manually graded markdown answer cells)")
    scores = {sc.student: sc for sc in gradebook.scores(ws.db_url, assignment)}
    if not scores:
        raise GraderError(f"no graded submission of {assignment} in {gradebook.shown(ws.db_url)}; run `grade` first")
    comments = _manual_comments(ws.db_url, assignment)
    out = out or ws.root / "exports" / f"written-{assignment}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = waiting = 0
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for student, sc in sorted(scores.items()):
            answers = answers_in(graded_notebook(ws.root, student, assignment))
            for gid, cell in questions.items():
                auto_comment, comment = comments.get((student, gid), (None, None))
                is_waiting = gid in sc.waiting
                status = "waiting" if is_waiting else "no answer" if auto_comment == "No response." else "scored"
                score = "" if is_waiting or sc.cells.get(gid) is None else f"{sc.cells[gid]:g}"
                w.writerow([student, assignment, gid, f"{cells.nbgrader(cell).get('points', 0):g}", score,
                            comment or "", status, answers.get(gid, ""), cells.question_text(source, gid),
                            cells.model_answer(cell), cells.rubric(cell)])
                rows += 1
                waiting += is_waiting
    return out, rows, waiting


def _manual_comments(url: str, assignment: str) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """{(student, question): (auto comment, manual comment)}."""
    with gradebook.open_gradebook(url) as gb:
        a = gb.find_assignment(assignment)
        return {(sub.student.id, c.name): (c.auto_comment, c.manual_comment)
                for sub in a.submissions for nb in sub.notebooks for c in nb.comments}


def import_csv(ws: Workspace, path: str | pathlib.Path) -> dict[str, int]:
    """Put the scores of a filled-in CSV into the gradebook. Returns {"scored": n, "skipped": n}.

    Raises ``GraderError`` naming every bad row (and changes nothing) when one is wrong."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise GraderError(f"{path} not found; pass the CSV written by `autograder written ASSIGNMENT`")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("student", "assignment", "question", "score") if c not in (reader.fieldnames or [])]
        if missing:
            raise GraderError(f"{path} has no {', '.join(missing)} column(s) (columns: {reader.fieldnames}); "
                              "start from the CSV that `autograder written ASSIGNMENT` writes")
        rows = list(reader)
    with gradebook.open_gradebook(ws.db_url) as gb:
        known = _written_questions(gb)
        submitted = {(s.student.id, a.name) for a in gb.assignments for s in a.submissions}
    errors, updates, seen = [], [], {}
    for line, row in enumerate(rows, start=2):
        student, assignment, gid = (row.get(k, "").strip() for k in ("student", "assignment", "question"))
        text = (row.get("score") or "").strip()
        where = f"line {line} ({student or '?'}, {assignment or '?'}, {gid or '?'})"
        if (student, assignment, gid) in seen:
            errors.append(f"{where}: the same answer as line {seen[(student, assignment, gid)]}; keep one row")
            continue
        seen[(student, assignment, gid)] = line
        if assignment not in known:
            errors.append(f"{where}: no assignment {assignment!r} with written questions in the gradebook")
        elif gid not in known[assignment]:
            errors.append(f"{where}: {assignment} has no written question {gid!r} "
                          f"(it has {', '.join(sorted(known[assignment]))})")
        elif (student, assignment) not in submitted:
            errors.append(f"{where}: no graded submission of {assignment} by {student!r}")
        elif text:
            try:
                score = float(text)
            except ValueError:
                score = math.nan
            notebook, points = known[assignment][gid]
            if not 0 <= score <= points:
                errors.append(f"{where}: score {text!r} is not a number from 0 to {points:g}, the points of {gid}")
            else:
                updates.append((student, assignment, notebook, gid, score, (row.get("comment") or "").strip()))
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN] + ([f"... and {len(errors) - MAX_ERRORS_SHOWN} more"]
                                             if len(errors) > MAX_ERRORS_SHOWN else [])
        raise GraderError(f"{path}: {len(errors)} bad row(s), nothing imported; fix them and import again:\n  "
                          + "\n  ".join(shown))
    with gradebook.lock(ws.db_url), gradebook.open_gradebook(ws.db_url) as gb:
        for student, assignment, notebook, gid, score, comment in updates:
            grade = gb.find_grade(gid, notebook, assignment, student)
            grade.manual_score, grade.needs_manual_grade = score, False
            gb.find_comment(gid, notebook, assignment, student).manual_comment = comment or None
        gb.db.commit()
    return {"scored": len(updates), "skipped": len(rows) - len(updates)}


def _written_questions(gb) -> dict[str, dict[str, tuple[str, float]]]:
    """{assignment: {question id: (notebook, points)}} of the manually graded markdown cells."""
    out: dict[str, dict[str, tuple[str, float]]] = {}
    for a in gb.assignments:
        for nb in a.notebooks:
            for cell in nb.grade_cells:
                if cell.cell_type == "markdown":
                    out.setdefault(a.name, {})[cell.name] = (nb.name, float(cell.max_score))
    return out

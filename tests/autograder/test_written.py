"""Written answers, end to end: ``grade`` leaves them to a person, ``written`` exports a CSV to score
and imports it back (every bad row named, nothing half-imported), nbgrader's formgrader scores them
too (through its web API, as its page does), ``export`` and the feedback show the scores, and a
regrade keeps a score whose answer did not change.

The toy course (``fixtures/course``) has one predict-then-run question, ``q_shift``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import pathlib
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from autograder import cells
from autograder.cli import main
from autograder.errors import GraderError
from autograder.workspace import Workspace, source_notebook

from grading_cases import Case, dump, filled, write_class

COURSE = pathlib.Path(__file__).resolve().parent / "fixtures" / "course"


def test_question_model_answer_and_rubric_are_read_from_the_source(tmp_path):
    source = source_notebook(COURSE, "toy")
    cell = cells.written(source)["q_shift"]
    assert cells.rubric(cell).startswith("**Rubric** (2 points): 1 for predicting unchanged probabilities")
    model = cells.model_answer(cell)
    assert model.startswith("**Prediction**\n\nThe same probabilities") and "**What happened, and why**" in model
    assert "Rubric" not in model and "### " not in model
    assert cells.question_text(source, "q_shift").startswith("## Exercise 4: shifted inputs (2 points)\n\nPredict")
    # what students get: both regions replaced, the labels kept, no model answer and no rubric
    released = cells.written(cells.read(Workspace.create(tmp_path / "ws", COURSE).release("toy")))["q_shift"]
    text = cells.source(released)
    assert text.count("YOUR ANSWER HERE") == 2 and "**What happened, and why**" in text
    assert "Rubric" not in text and "0.27" not in text


def _write(path: pathlib.Path, rows: list[dict]) -> pathlib.Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_import_names_every_bad_row_and_changes_nothing(tmp_path):
    """Against a gradebook that knows two submissions (no grading needed to check the rows)."""
    from nbgrader.api import Gradebook

    from autograder.written import import_csv

    ws = Workspace.create(tmp_path / "ws", COURSE)
    ws.release("toy")
    with Gradebook(ws.db_url) as gb:
        for s in ("ann", "bob"):
            gb.add_student(s)
            gb.add_submission("toy", s)
    row = {"student": "ann", "assignment": "toy", "question": "q_shift", "score": "2", "comment": "good"}
    bad = _write(tmp_path / "bad.csv", [
        row,
        {**row, "student": "bob", "score": "2.5"},        # over the points
        {**row, "student": "bob", "score": "two"},        # the same row again, and not a number
        {**row, "student": "zed"},                        # nobody
        {**row, "question": "q_none"},                    # no such question
        {**row, "question": "test_relu"},                 # an autograded cell
        {**row, "assignment": "nope"},
    ])
    with pytest.raises(GraderError) as e:
        import_csv(ws, bad)
    message = str(e.value)
    assert "6 bad row(s), nothing imported" in message
    for expected in ["line 3 (bob, toy, q_shift): score '2.5' is not a number from 0 to 2",
                     "line 4 (bob, toy, q_shift): the same answer as line 3", "line 5 (zed, toy, q_shift): no graded submission",
                     "line 6 (ann, toy, q_none): toy has no written question 'q_none' (it has q_shift)",
                     "line 7 (ann, toy, test_relu): toy has no written question", "line 8 (ann, nope, q_shift): no assignment 'nope'"]:
        assert expected in message, message
    with Gradebook(ws.db_url) as gb:
        assert gb.find_grade("q_shift", "toy", "toy", "ann").manual_score is None  # line 2 was fine, but not imported
    with pytest.raises(GraderError, match="no score column"):
        import_csv(ws, _write(tmp_path / "no-score.csv", [{"student": "ann", "assignment": "toy", "question": "q_shift"}]))
    done = import_csv(ws, _write(tmp_path / "good.csv", [row, {**row, "student": "bob", "score": ""}]))
    assert done == {"scored": 1, "skipped": 1}
    with Gradebook(ws.db_url) as gb:
        grade = gb.find_grade("q_shift", "toy", "toy", "ann")
        assert (grade.manual_score, grade.needs_manual_grade) == (2.0, False)
        assert gb.find_comment("q_shift", "toy", "toy", "ann").manual_comment == "good"
        assert gb.find_grade("q_shift", "toy", "toy", "bob").manual_score is None


def _grades(ws: pathlib.Path) -> dict[str, dict]:
    return {r["student"]: r for r in csv.DictReader(open(ws / "exports" / "grades.csv")) if r["assignment"] == "toy"}


def _human(ws: pathlib.Path) -> dict[str, str]:
    return {r["student"]: r["reasons"] for r in csv.DictReader(open(ws / "exports" / "needs_human.csv"))}


@contextlib.contextmanager
def formgrader(ws: pathlib.Path):
    """A Jupyter server started in the workspace, as the guide says; yields a function that calls the
    formgrader's web API (``call("PUT", "/formgrader/api/grade/ID", {...})``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(8)
    server = subprocess.Popen([sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1", "--no-browser", "--allow-root",
                               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ws}"],
                              cwd=ws, env=Workspace.load(ws).env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)

    def call(method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    try:
        for _ in range(240):
            with contextlib.suppress(OSError):
                call("GET", "/formgrader/api/status")
                break
            assert server.poll() is None, server.communicate()[0]
            time.sleep(0.5)
        yield call
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.mark.slow
def test_written_answers_end_to_end(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(["init", str(ws), "--course", str(COURSE)]) == 0
    w = ["-w", str(ws)]
    source, release = source_notebook(COURSE, "toy"), cells.read(Workspace.load(ws).release("toy"))
    autograded = cells.autograded_points(release)
    other = "**Prediction**\n\nThey change.\n\n**What happened, and why**\n\nThey did not: the shift cancels."
    students = {"ann": Case(dump(filled(release, source)), "toy.ipynb"),                 # the model answer
                "bob": Case(dump(release), "toy.ipynb"),                                  # nothing written
                "cyd": Case(dump(filled(release, source, replace={"q_shift": other})), "toy.ipynb")}
    downloads, roster = write_class(tmp_path, students)
    assert main([*w, "collect", str(downloads), "--roster", str(roster)]) == 0
    assert main([*w, "grade", "toy", "--jobs", "2"]) == 0  # written answers waiting are no failure
    assert "autograder written toy" in capsys.readouterr().out
    assert main([*w, "export"]) == 0
    grades = _grades(ws)
    assert {s: (float(r["score"]), r["waiting_for_a_person"]) for s, r in grades.items()} == \
        {"ann": (autograded, "q_shift"), "bob": (0.0, ""), "cyd": (autograded, "q_shift")}
    assert _human(ws) == {s: "written answers waiting for a person: q_shift" for s in ("ann", "cyd")}

    # the CSV to score: one row per student, the answer, the question, the model answer and the rubric
    assert main([*w, "written", "toy"]) == 0
    assert "2 waiting for a score" in capsys.readouterr().out
    path = ws / "exports" / "written-toy.csv"
    rows = {r["student"]: r for r in csv.DictReader(open(path))}
    assert {s: (r["status"], r["score"]) for s, r in rows.items()} == \
        {"ann": ("waiting", ""), "bob": ("no answer", "0"), "cyd": ("waiting", "")}
    assert rows["cyd"]["answer"] == other and rows["ann"]["max_points"] == "2"
    assert rows["ann"]["rubric"].startswith("**Rubric**") and "The same probabilities" in rows["ann"]["model_answer"]
    assert rows["ann"]["question_text"].startswith("## Exercise 4")
    rows["ann"].update(score="2", comment="Right, and the reason is the cancelling factor.")
    _write(path, list(rows.values()))  # cyd's score left empty: his answer keeps waiting
    assert main([*w, "written", "--import", str(path)]) == 0
    assert "1 row(s) without a score left waiting" in capsys.readouterr().out
    assert main([*w, "export"]) == 0
    assert _human(ws) == {"cyd": "written answers waiting for a person: q_shift"}
    with formgrader(ws) as call:  # cyd's answer scored in nbgrader's formgrader instead
        notebook = next(n for n in call("GET", "/formgrader/api/submitted_notebooks/toy/toy") if n["student"] == "cyd")
        grade = next(g for g in call("GET", f"/formgrader/api/grades?submission_id={notebook['id']}")
                     if g["name"] == "q_shift")
        assert grade["needs_manual_grade"]
        call("PUT", f"/formgrader/api/grade/{grade['id']}", {"manual_score": 1, "extra_credit": 0})
    assert main([*w, "export"]) == 0
    assert {s: float(r["score"]) for s, r in _grades(ws).items()} == {"ann": autograded + 2, "bob": 0.0, "cyd": autograded + 1}
    assert _human(ws) == {}
    assert main([*w, "feedback", "toy"]) == 0
    page = (ws / "feedback" / "ann" / "toy" / "toy.html").read_text()
    assert "the cancelling factor" in page and "waiting for a person" not in page

    # both resubmit: ann the same notebook (her score stays), cyd a new answer (it waits again)
    again = {"ann": students["ann"], "cyd": Case(dump(filled(release, source, replace={"q_shift": other + " Really."})),
                                                 "toy.ipynb")}
    downloads, _ = write_class(tmp_path / "again", again)
    assert main([*w, "collect", str(downloads), "--roster", str(roster)]) == 0
    assert main([*w, "grade", "toy", "--student", "ann", "--student", "cyd"]) == 0
    assert main([*w, "export"]) == 0
    assert {s: (float(r["score"]), r["waiting_for_a_person"]) for s, r in _grades(ws).items()} == \
        {"ann": (autograded + 2, ""), "bob": (0.0, ""), "cyd": (autograded, "q_shift")}
    assert json.loads((ws / "reports" / "toy" / "cyd.json").read_text())["waiting"] == ["q_shift"]

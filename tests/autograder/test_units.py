"""Fast tests of the autograder's pure parts: file-name mapping, intake, repair, flags."""

from __future__ import annotations

import copy
import hashlib
import json
import pathlib
import re
import zipfile

import pytest

from autograder import collect as intake
from autograder.cells import nbgrader as meta
from autograder.errors import GraderError
from autograder.repair import repair
from autograder.workspace import Workspace

from grading_cases import answers, dump, filled

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "course"
REPO = pathlib.Path(__file__).resolve().parents[2]
CHAPTERS = ["01-patches", "05-dino", "07-swin"]


@pytest.mark.parametrize("name, chapter", [
    ("05-dino.ipynb", "05-dino"), ("Copy of 05-dino.ipynb", "05-dino"), ("05-dino (2).ipynb", "05-dino"),
    ("05_dino.ipynb", "05-dino"), ("05-DINO.ipynb", "05-dino"), ("Copy of 05_dino (3).ipynb", "05-dino"),
    ("alice_1234_5678_05-dino.ipynb", "05-dino"), ("05-dino - Copy.ipynb", "05-dino"),
    ("07.ipynb", "07-swin"), ("homework.ipynb", None), ("06-mae.ipynb", None),
])
def test_file_names_map_to_chapters(name, chapter):
    assert intake.chapter_for(name, CHAPTERS) == chapter


def _source_and_release():
    """The toy source, and a stand-in for its release (solutions replaced by the stub)."""
    source = json.loads((FIXTURE / "solutions/toy/toy.ipynb").read_text())
    release = copy.deepcopy(source)
    for c in release["cells"]:
        if meta(c).get("solution") and c["cell_type"] == "markdown":
            c["source"] = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "YOUR ANSWER HERE", "".join(c["source"]),
                                 flags=re.S)
        elif meta(c).get("solution"):
            head = "".join(c["source"]).split("### BEGIN SOLUTION")[0]
            c["source"] = head + "    raise NotImplementedError()"
        if meta(c).get("grade"):
            c["source"] = "".join(c["source"]).split("### BEGIN HIDDEN TESTS")[0]
    return source, release


def test_repair_intact_notebook_changes_nothing():
    source, release = _source_and_release()
    full = filled(release, source)
    fixed, report = repair(full, release)
    assert not report.repaired
    assert [c["source"] for c in fixed["cells"]] == [c["source"] for c in full["cells"]]


def test_repair_stripped_moved_retyped_and_inserted_cells():
    source, release = _source_and_release()
    sol = answers(source)
    student = filled(release, source)
    for c in student["cells"]:
        c["metadata"] = {}
    cells = student["cells"]
    i_soft = next(i for i, c in enumerate(cells) if "def softmax" in "".join(c["source"]))
    cells[i_soft]["cell_type"] = "markdown"                      # answer turned into markdown
    i_test = next(i for i, c in enumerate(cells) if "relu: visible" in "".join(c["source"]))
    cells[i_test]["source"] = "".join(cells[i_test]["source"]).replace(
        "assert relu(x).shape == x.shape", "assert True")            # edited test cell
    cells.insert(1, {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                     "source": "HELPER = 1"})                     # inserted cell
    fixed, report = repair(student, release)
    by_id = {meta(c).get("grade_id"): c for c in fixed["cells"] if meta(c)}
    assert "assert relu(x).shape == x.shape" in by_id["test_relu"]["source"]
    assert by_id["softmax"]["source"] == sol["softmax"] and by_id["softmax"]["cell_type"] == "code"
    assert by_id["relu"]["source"] == sol["relu"]
    assert "relu: visible" in by_id["test_relu"]["source"]       # the release's test cell
    assert report.type_changed == ["softmax"] and report.tests_edited == ["test_relu"]
    assert report.extra_cells_kept == 1 and report.repaired
    assert [c["source"] for c in fixed["cells"]].index("HELPER = 1") < \
        [meta(c).get("grade_id") for c in fixed["cells"]].index("relu")
    assert set(report.answers) == set(answers(source))  # the written answer too
    assert by_id["q_shift"]["source"] == sol["q_shift"] and by_id["q_shift"]["cell_type"] == "markdown"


def test_repair_deleted_answer_keeps_the_stub():
    source, release = _source_and_release()
    student = filled(release, source)
    student["cells"] = [c for c in student["cells"] if meta(c).get("grade_id") != "softmax"]
    for c in student["cells"]:
        c["metadata"] = {}
    fixed, report = repair(student, release)
    assert report.answers["softmax"].startswith("missing")
    assert report.answers["patchify"] != "missing"


def test_collect_copies_and_reports(tmp_path):
    ws = Workspace.create(tmp_path / "ws", FIXTURE)
    nb = dump({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    with zipfile.ZipFile(tmp_path / "lms.zip", "w") as z:
        z.writestr("ann_1_2_Copy of toy.ipynb", nb)
        z.writestr("ann_1_3_toy (2).ipynb", nb + b" ")
        z.writestr("zed_1_2_toy.ipynb", nb)                  # not on the roster
        z.writestr("ann_1_4_other.ipynb", nb)                # no such chapter
        z.writestr("../evil_toy.ipynb", nb)                  # would escape the folder
    before = hashlib.sha256((tmp_path / "lms.zip").read_bytes()).hexdigest()
    (tmp_path / "roster.csv").write_text("student_id,email\nann,ann@x.org\n")
    report = intake.collect(ws, tmp_path / "lms.zip", tmp_path / "roster.csv")
    assert report["collected"] == ["ann/toy"]
    assert ws.manifest()["ann/toy"]["file"] == "ann/toy/ann_1_3_toy (2).ipynb"
    assert [d["file"] for d in report["duplicates"]] == ["ann_1_2_Copy of toy.ipynb"]
    assert sorted(u["file"] for u in report["unplaced"]) == ["ann_1_4_other.ipynb", "zed_1_2_toy.ipynb"]
    assert report["skipped"] == []
    assert ws.verify_originals() == []
    assert hashlib.sha256((tmp_path / "lms.zip").read_bytes()).hexdigest() == before
    assert not (tmp_path / "evil_toy.ipynb").exists()


def test_workspace_refuses_the_repository():
    with pytest.raises(GraderError, match="inside the repository"):
        Workspace.create(pathlib.Path(__file__).parent / "ws-here")


def test_workspace_uses_the_gradebook_url_it_is_given(tmp_path):
    """Any SQLAlchemy URL is passed through to nbgrader (here a second SQLite file; PostgreSQL is the
    same code path with another URL)."""
    from nbgrader.api import Gradebook

    from autograder import cells

    url = f"sqlite:///{tmp_path / 'elsewhere' / 'class.db'}"
    (tmp_path / "elsewhere").mkdir()
    ws = Workspace.create(tmp_path / "ws", FIXTURE, db_url=url)
    assert Workspace.load(tmp_path / "ws").db_url == url
    ws.release("toy")
    assert not (tmp_path / "ws" / "gradebook.db").exists()
    source = json.loads((FIXTURE / "solutions/toy/toy.ipynb").read_text())
    with Gradebook(url) as gb:  # the autograded and the written points
        assert gb.find_assignment("toy").max_score == cells.total_points(source) == 12


def test_new_gradebooks_carry_the_schema_revision_alembic_reports(tmp_path, monkeypatch):
    """The grader reads nbgrader's schema revision in its own processes (``gradebook.schema_revision``)
    instead of starting the ``alembic`` command as nbgrader does: the same revision lands in a new
    gradebook, the workspace's (created in this process) and a template's (created by the worker,
    here with no ``alembic`` command on its PATH)."""
    import sqlite3
    import subprocess
    import sys

    import nbgrader.api
    from nbgrader.dbutil import _temp_alembic_ini

    from autograder import gradebook

    with _temp_alembic_ini(f"sqlite:///{tmp_path / 'unused.db'}") as ini:  # what nbgrader itself runs
        heads = subprocess.check_output([pathlib.Path(sys.executable).parent / "alembic", "-c", ini, "heads"],
                                        text=True)
    revision = heads.split()[0]
    assert gradebook.schema_revision() == revision

    def no_alembic(*args, **kwargs):
        raise AssertionError(f"started {args}")

    monkeypatch.setattr(nbgrader.api.sp, "check_output", no_alembic)
    ws = Workspace.create(tmp_path / "ws", FIXTURE)
    ws.link_source("toy")
    template = tmp_path / "template"
    template.mkdir()
    ws.write_nbgrader_config(template, f"sqlite:///{template / 'template.db'}")
    done = subprocess.run([sys.executable, "-m", "autograder.worker", "generate_assignment", "toy"], cwd=template,
                          env=dict(ws.env(), PATH="/usr/bin:/bin"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for db in (tmp_path / "ws" / "gradebook.db", template / "template.db"):
        with sqlite3.connect(db) as con:
            assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(revision,)]


# ------------------------------------------------------------------ cells, records, the command line
def test_cells_read_nbgrader_metadata():
    from autograder import cells

    source, release = _source_and_release()
    assert [cells.kind(c) for c in source["cells"][:5]] == ["markdown", "code", "markdown", "solution", "test"]
    assert list(cells.answers(source)) == ["relu", "softmax", "patchify", "q_shift"]
    assert {g: cells.points(c) for g, c in cells.tests(source).items()} == \
        {"test_relu": 2.0, "test_softmax": 3.0, "test_patchify": 5.0}
    assert cells.autograded_points(release) == 10.0 and cells.grade_id(source["cells"][0]) is None
    assert list(cells.written(source)) == ["q_shift"] and cells.total_points(source) == 12.0
    assert "BEGIN SOLUTION" not in cells.solution_code(cells.answers(source)["relu"])
    broken = {"cell_type": "code", "source": ["x = 1\n", "y = 2"], "metadata": {"nbgrader": "lost"}}
    assert cells.kind(broken) == "code" and cells.source(broken) == "x = 1\ny = 2" and cells.points(broken) == 0.0


def test_submission_record_round_trip(tmp_path):
    from autograder.record import Submission
    from autograder.repair import RepairReport

    r = Submission("ann", "toy", status="graded", score=7.0, max_score=10.0, cells={"test_relu": 2.0},
                   repair=RepairReport(answers={"relu": "position"}, repaired=True), flags=["relu: monkeypatch"])
    r.save(tmp_path / "ann.json")
    back = Submission.load(tmp_path / "ann.json")
    assert back == r and isinstance(back.repair, RepairReport)
    assert back.reasons() == ["flagged: relu: monkeypatch", "repaired: relu matched by position"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "ws"
    return Workspace.create(root, FIXTURE)


@pytest.mark.parametrize("argv, status, message", [
    (["grade", "05-dino"], 2, "unknown assignment '05-dino'; the course has toy"),
    (["grade", "toy", "--student", "zed"], 2, "no collected submission of toy for zed"),
    (["grade", "toy", "--shard", "3/2"], 2, "--shard '3/2': I must be between 1 and N"),
    (["collect", "nowhere.zip", "--roster", "r.csv"], 2, "nowhere.zip not found"),
    (["feedback", "nothing"], 2, "unknown assignment 'nothing'"),
])
def test_command_line_errors_are_one_line(workspace, capsys, argv, status, message):
    from autograder.cli import main

    assert main(["-w", str(workspace.root), *argv]) == status
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_collect_exits_1_when_a_notebook_cannot_be_placed(workspace, tmp_path, capsys):
    from autograder.cli import main

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ann_toy.ipynb").write_text("{}")
    (tmp_path / "in" / "zed_toy.ipynb").write_text("{}")
    (tmp_path / "in" / "ann_notes.txt").write_text("hello")
    (tmp_path / "roster.csv").write_text("student_id\nann\n")
    collect = ["-w", str(workspace.root), "collect", str(tmp_path / "in"), "--roster"]
    assert main([*collect, str(tmp_path / "roster.csv")]) == 1
    out = capsys.readouterr().out
    assert "NOT PLACED: zed_toy.ipynb" in out and "skipped: ann_notes.txt (not a notebook)" in out
    (tmp_path / "bad.csv").write_text("name\nann\n")
    assert main([*collect, str(tmp_path / "bad.csv")]) == 2
    assert "has no student_id column" in capsys.readouterr().err


@pytest.mark.parametrize("chapter", sorted(p.parent.name for p in (REPO / "solutions").glob("*/*.ipynb")))
def test_feedback_hides_every_hidden_test_of_the_course(chapter):
    """The feedback preprocessor's rewrite, on every test cell of every chapter's source."""
    from autograder import cells
    from autograder.feedback import PLACEHOLDER, hide

    source = json.loads((REPO / "solutions" / chapter / f"{chapter}.ipynb").read_text())
    hidden = [c for c in cells.tests(source).values() if "BEGIN HIDDEN TESTS" in cells.source(c)]
    assert hidden
    for cell in hidden:
        shown = hide(cells.source(cell))
        assert "HIDDEN TESTS" not in shown.replace(PLACEHOLDER, "") and PLACEHOLDER in shown
        visible = cells.source(cell).split("### BEGIN HIDDEN TESTS")[0]
        assert shown.startswith(visible.rstrip(" \t"))


def test_guide_timing_tables_are_rendered_from_the_committed_results(tmp_path, monkeypatch):
    """The instructor guide's grading tables and class plan are what `benchmarks/grading.py --render`
    writes from benchmarks/results/grading_course.json and grading_class.json."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_grading", REPO / "benchmarks" / "grading.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    guide = REPO / "book" / "instructor-guide.md"
    copy = tmp_path / "guide.md"
    copy.write_text(guide.read_text())
    monkeypatch.setattr(bench, "GUIDE", copy)
    bench.render()
    assert copy.read_text() == guide.read_text(), "run `python benchmarks/grading.py --render`"

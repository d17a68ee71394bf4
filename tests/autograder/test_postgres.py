"""A PostgreSQL gradebook shared by several graders, end to end: grade, regrade, export.

The test starts its own server (Debian's ``postgresql`` package: initdb and pg_ctl from
/usr/lib/postgresql/*/bin) in a temporary folder, as the ``postgres`` user when it runs as root
(PostgreSQL refuses to run as root), and stops it afterwards. Two graders, each with their own
workspace and part of the class, grade at the same time into the one gradebook; one of them
regrades a resubmission; both exports hold every student's grade exactly once.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from autograder.cli import main
from autograder.workspace import Workspace, source_notebook

import system_packages
from grading_cases import basic_cases, write_class

pytestmark = pytest.mark.slow
REPO = pathlib.Path(__file__).resolve().parents[2]
COURSE = pathlib.Path(__file__).resolve().parent / "fixtures" / "course"


def _as_server_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@pytest.fixture(scope="module")
def postgres_url():
    """postgresql://grader@127.0.0.1:PORT/vit on a private server, stopped after the module."""
    pg = os.path.dirname(system_packages.require("postgresql"))  # /usr/lib/postgresql/NN/bin
    user = None
    folder = pathlib.Path(tempfile.mkdtemp(prefix="vit-postgres-"))
    if os.geteuid() == 0:  # initdb and postgres refuse root: run them as the postgres user
        user = "postgres"
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server "
                        "(apt-get install -y postgresql creates it)")
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data, log = folder / "data", folder / "server.log"
    run = dict(check=True, capture_output=True, text=True)
    subprocess.run(_as_server_user([f"{pg}/initdb", "-D", str(data), "-U", "grader", "--auth=trust",
                                    "-E", "UTF8", "--no-sync"], user), **run)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_server_user([f"{pg}/pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w",
                                    "start"], user), **run)
    try:
        subprocess.run([f"{pg}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "vit"], **run)
        yield f"postgresql://grader@127.0.0.1:{port}/vit"
    finally:
        subprocess.run(_as_server_user([f"{pg}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"], user),
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def grades(ws: pathlib.Path) -> dict[str, tuple[float, str]]:
    with open(ws / "exports" / "grades.csv") as f:
        return {r["student"]: (float(r["score"]), r["status"]) for r in csv.DictReader(f) if r["assignment"] == "toy"}


def test_several_graders_share_a_postgres_gradebook(tmp_path, postgres_url):
    from nbgrader.api import Gradebook

    t_start = time.perf_counter()
    graders = {name: tmp_path / name for name in ("ta1", "ta2")}
    for ws in graders.values():
        assert main(["init", str(ws), "--course", str(COURSE), "--db", postgres_url]) == 0
    source = source_notebook(COURSE, "toy")
    release = Workspace.load(graders["ta1"]).release("toy")
    cases = basic_cases("toy", source, json.loads(release.read_text()))
    sections = {"ta1": {"ann": cases["solution"], "bob": cases["partial"]},
                "ta2": {"cyd": cases["solution"], "dan": cases["release"], "eve": cases["corrupt"]}}
    for name, ws in graders.items():
        downloads, roster = write_class(tmp_path / f"class-{name}", sections[name])
        assert main(["-w", str(ws), "collect", str(downloads), "--roster", str(roster)]) == 0

    # both graders at once, into the one gradebook
    running = [subprocess.Popen([sys.executable, "-m", "autograder", "-w", str(ws), "grade", "toy"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for ws in graders.values()]
    outputs = [p.communicate()[0] for p in running]
    assert [p.returncode for p in running] == [0, 1], outputs  # ta2 has an unreadable file

    # bob resubmits a complete notebook; ta1 regrades him alone
    late = tmp_path / "late"
    (late / "bob").mkdir(parents=True)
    (late / "bob" / "toy.ipynb").write_bytes(cases["solution"].content)
    (late / "roster.csv").write_text("student_id\nann\nbob\n")
    assert main(["-w", str(graders["ta1"]), "collect", str(late), "--roster", str(late / "roster.csv")]) == 0
    assert main(["-w", str(graders["ta1"]), "grade", "toy", "--student", "bob"]) == 0

    with contextlib.closing(Gradebook(Workspace.load(graders["ta1"]).db_url)) as gb:
        subs = sorted((s.student.id, s.score) for s in gb.find_assignment("toy").submissions)
        n_grades = sum(len(nb.grades) for s in gb.find_assignment("toy").submissions for nb in s.notebooks)
    assert subs == [("ann", 10.0), ("bob", 10.0), ("cyd", 10.0), ("dan", 0.0)]  # once each, bob replaced
    assert n_grades == 3 * 4

    for ws in graders.values():
        assert main(["-w", str(ws), "export"]) == 0
    # each grader's export has the whole class that reached the gradebook, with their own statuses
    assert grades(graders["ta1"]) == {"ann": (10, "graded"), "bob": (10, "graded"), "cyd": (10, "graded"),
                                      "dan": (0, "graded")}
    assert grades(graders["ta2"]) == {"ann": (10, "graded"), "bob": (10, "graded"), "cyd": (10, "graded"),
                                      "dan": (0, "graded"), "eve": (0, "corrupt")}
    print(f"PostgreSQL gradebook, two graders, grade + regrade + export: {time.perf_counter() - t_start:.0f} s")


def test_unreachable_gradebook_is_a_clear_error(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://grader@127.0.0.1:{port}/vit"
    assert main(["init", str(tmp_path / "ws"), "--course", str(COURSE), "--db", url]) == 2
    err = capsys.readouterr().err
    assert f"cannot open the gradebook postgresql+psycopg2://grader@127.0.0.1:{port}/vit" in err
    assert "check that the database server runs" in err
    assert not (tmp_path / "ws" / "workspace.json").exists()

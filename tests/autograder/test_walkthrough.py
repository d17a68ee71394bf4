"""The instructor guide's full cycle (init, collect, grade, feedback, export), run as written.

The commands are read from the first bash block under "A full cycle" in book/instructor-guide.md;
``~/grading`` and ``~/Downloads`` become temporary folders. The class: two students in an LMS zip,
one with the solved chapter (saved as ``Copy of 01-patches.ipynb``), one with the release, and a
third on the roster who handed nothing in.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import zipfile

import pytest

from autograder import cells

from grading_cases import dump, filled

pytestmark = pytest.mark.slow
REPO = pathlib.Path(__file__).resolve().parents[2]
GUIDE = REPO / "book" / "instructor-guide.md"


def guide_commands() -> list[str]:
    text = GUIDE.read_text()
    section = text[text.index("### A full cycle"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_guide_names_every_step():
    words = [shlex.split(c)[3] if c.startswith("python") else "export-env" for c in guide_commands()]
    assert [w for w in words if w != "export-env"] == ["init", "collect", "grade", "feedback", "export"]


def test_full_cycle_from_the_guide(tmp_path):
    home = tmp_path / "home"
    downloads = home / "Downloads"
    downloads.mkdir(parents=True)
    source = json.loads((REPO / "solutions/01-patches/01-patches.ipynb").read_text())
    release = json.loads((REPO / "notebooks/01-patches/01-patches.ipynb").read_text())
    with zipfile.ZipFile(downloads / "submissions.zip", "w") as z:
        z.writestr("ada_1001_2001_Copy of 01-patches.ipynb", dump(filled(release, source)))
        z.writestr("bob_1002_2002_01-patches.ipynb", dump(release))
        z.writestr("bob_1002_2003_notes.txt", "not a notebook")
    (downloads / "roster.csv").write_text("student_id,name,email\nada,Ada L,ada@uni.edu\nbob,Bob K,bob@uni.edu\n"
                                          "cyd,Cyd M,cyd@uni.edu\n")

    env = dict(os.environ)
    for command in guide_commands():
        command = command.replace("~", str(home))
        if command.startswith("export "):
            key, value = command[len("export "):].split("=", 1)
            env[key] = value
            continue
        argv = shlex.split(command)
        assert argv[0] == "python"
        done = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        if argv[3] == "collect":
            assert "collected 2 submission(s)" in done.stdout
            assert "skipped: bob_1002_2003_notes.txt (not a notebook)" in done.stdout

    ws = home / "grading" / "vit-course"
    rows = {(r["student"], r["assignment"]): r for r in csv.DictReader(open(ws / "exports/grades.csv"))}
    autograded, written = cells.autograded_points(release), sorted(cells.written(release))  # written: scored by a person
    assert float(rows[("ada", "01-patches")]["score"]) == float(rows[("ada", "TOTAL")]["score"]) == autograded
    assert rows[("ada", "01-patches")]["waiting_for_a_person"].split() == written
    assert rows[("bob", "01-patches")]["score"] == "0" and rows[("bob", "01-patches")]["waiting_for_a_person"] == ""
    assert rows[("cyd", "01-patches")]["status"] == "missing" and rows[("cyd", "TOTAL")]["score"] == "0"
    html = (ws / "feedback/ada/01-patches/01-patches.html").read_text()
    assert "BEGIN HIDDEN TESTS" not in html
    human = [(r["student"], r["reasons"]) for r in csv.DictReader(open(ws / "exports/needs_human.csv"))]
    assert human == ([("ada", "written answers waiting for a person: " + ", ".join(written))] if written else [])

"""Grading beyond one machine: ``grade --shard I/N`` and ``merge``, through the command line.

One class of the toy course is graded twice: on one machine (one ``grade``), and as two shards run
at the same time (as two machines sharing the workspace folder would), merged afterwards. The
exports must be identical. Then a student resubmits and only their shard is regraded, a regrade in
the workspace itself is newer than any shard, and merging again, or twice, never doubles a grade.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib
import subprocess
import sys
import time

import pytest

from autograder import cells
from autograder.cli import main
from autograder.grade import Shard
from autograder.record import Submission
from autograder.workspace import Workspace, source_notebook

from grading_cases import basic_cases, dump, filled, structural_cases, write_class

pytestmark = pytest.mark.slow
REPO = pathlib.Path(__file__).resolve().parents[2]
COURSE = pathlib.Path(__file__).resolve().parent / "fixtures" / "course"


def toy_class(release: dict) -> dict:
    source = source_notebook(COURSE, "toy")
    basic = basic_cases("toy", source, release)
    damaged = structural_cases("toy", source, release, separate=True)
    bug = filled(release, source, replace={"relu": "def relu(x):\n    return x.clamp(max=0)\n"})
    return {"ann": basic["solution"], "bob": basic["release"], "cyd": basic["partial"], "dan": damaged["renamed"],
            "eve": basic["corrupt"], "fay": damaged["stripped"], "hal": basic["solution"],
            "gus": dataclasses.replace(basic["solution"], content=dump(bug))}


def cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "autograder", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    out, err = process.communicate()
    return process.returncode, out + err


def rows(ws: pathlib.Path) -> list[dict]:
    with open(ws / "exports" / "grades.csv") as f:
        return list(csv.DictReader(f))


def submissions(ws: pathlib.Path) -> list[tuple[str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{ws / 'gradebook.db'}") as gb:
        return sorted((s.student.id, s.score) for s in gb.find_assignment("toy").submissions)


def test_shard_is_stable_and_covers_everyone():
    ids = [f"s{k:04d}" for k in range(1000)]
    shards = [Shard(i, 4) for i in range(1, 5)]
    owners = [[s for s in shards if s.holds(i)] for i in ids]
    assert all(len(o) == 1 for o in owners)
    assert all(200 <= sum(o[0] == s for o in owners) <= 300 for s in shards)  # a fair share each
    assert Shard.parse("3/4") == Shard(3, 4) and str(Shard(3, 4)) == "3/4"
    for bad in ("0/2", "3/2", "1-2", "x"):
        with pytest.raises(ValueError, match="--shard"):
            Shard.parse(bad)


def test_two_shards_merged_equal_one_machine(tmp_path):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    for ws in (single, sharded):
        assert main(["init", str(ws), "--course", str(COURSE)]) == 0
    cases = toy_class(cells.read(Workspace.load(sharded).release("toy")))
    downloads, roster = write_class(tmp_path, cases)
    for ws in (single, sharded):
        assert main(["-w", str(ws), "collect", str(downloads), "--roster", str(roster)]) == 0
    assert {s for s in cases if Shard(1, 2).holds(s)} == {"fay", "gus", "hal"}  # both shards have work

    t0 = time.perf_counter()
    code, out = finish(cli("-w", str(single), "grade", "toy", "--jobs", "2"))
    print(f"one machine, --jobs 2: {time.perf_counter() - t0:.0f} s")
    assert code == 1 and "eve (corrupt)" in out, out  # a submission needs a person: exit status 1

    t0 = time.perf_counter()
    first, second = (cli("-w", str(sharded), "grade", "toy", "--shard", f"{i}/2") for i in (1, 2))
    (code1, out1), (code2, out2) = finish(first), finish(second)
    print(f"two shards at once, --jobs 1 each: {time.perf_counter() - t0:.0f} s")
    assert (code1, code2) == (0, 1), out1 + out2
    assert not (sharded / "exports" / "grades.csv").exists() and submissions(sharded) == []  # not merged yet
    assert main(["-w", str(sharded), "merge"]) == 0
    for ws in (single, sharded):
        assert main(["-w", str(ws), "export"]) == 0
    assert rows(sharded) == rows(single)
    assert submissions(sharded) == submissions(single)
    assert [s for s, _ in submissions(sharded)] == sorted(set(cases) - {"eve"})  # one each, no corrupt file
    scores = {r["student"]: float(r["score"]) for r in rows(sharded) if r["assignment"] == "toy"}
    assert scores == {"ann": 10, "bob": 0, "cyd": 2, "dan": 10, "eve": 0, "fay": 10, "gus": 8, "hal": 10}

    # bob resubmits: only his shard is regraded; merging replaces his grade, twice changes nothing
    solved = tmp_path / "late"
    (solved / "bob").mkdir(parents=True)
    (solved / "bob" / "toy.ipynb").write_bytes(cases["ann"].content)
    assert main(["-w", str(sharded), "collect", str(solved), "--roster", str(roster)]) == 0
    shard = next(f"{i}/2" for i in (1, 2) if Shard(i, 2).holds("bob"))
    assert main(["-w", str(sharded), "grade", "toy", "--shard", shard, "--student", "bob"]) == 0
    # cyd is regraded in the workspace itself, after the shards: merge must keep that newer grade
    assert main(["-w", str(sharded), "grade", "toy", "--student", "cyd"]) == 0
    newer = Submission.load(sharded / "reports" / "toy" / "cyd.json").graded_at
    for _ in range(2):
        assert main(["-w", str(sharded), "merge"]) == 0
    assert main(["-w", str(sharded), "export"]) == 0
    after = dict(submissions(sharded))
    assert sorted(after) == sorted(set(cases) - {"eve"}) and after["bob"] == 10 and after["cyd"] == 2
    assert Submission.load(sharded / "reports" / "toy" / "cyd.json").graded_at == newer
    assert {r["student"]: float(r["score"]) for r in rows(sharded) if r["assignment"] == "toy"}["bob"] == 10


def test_merge_without_shards_says_what_to_do(tmp_path, capsys):
    assert main(["init", str(tmp_path / "ws"), "--course", str(COURSE)]) == 0
    assert main(["-w", str(tmp_path / "ws"), "merge"]) == 2
    assert "run `grade ASSIGNMENT --shard I/N` first" in capsys.readouterr().err

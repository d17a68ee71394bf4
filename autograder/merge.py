"""Merge shard results into the workspace: ``autograder merge [SHARD_FOLDER ...]``.

A shard folder (``shards/ASSIGNMENT/I-of-N/``, written by ``grade --shard I/N``) holds a SQLite
gradebook, ``reports/`` and ``autograded/``. Merging copies each student's submission, report and
graded notebook into the workspace; a student already there is replaced whole, never doubled. When
a student appears more than once (shards of an earlier run, a regrade, the workspace's own grading),
the most recent grading wins, so merging again, or in any order, gives the same gradebook.
"""

from __future__ import annotations

import pathlib
import shutil

from autograder import gradebook, written
from autograder.errors import GraderError
from autograder.record import Submission
from autograder.workspace import Workspace


def shard_folders(ws: Workspace) -> list[pathlib.Path]:
    return sorted(p.parent for p in (ws.root / "shards").glob("*/*/gradebook.db"))


def merge(ws: Workspace, folders: list[str | pathlib.Path] | None = None, log=print) -> dict[str, list[str]]:
    """Copy the newest result of every student in ``folders`` (default: all shard folders of the
    workspace) into the workspace. Returns {assignment: students merged}."""
    folders = [pathlib.Path(f).resolve() for f in folders] if folders else shard_folders(ws)
    if not folders:
        raise GraderError(f"no shard results under {ws.root / 'shards'}; run `grade ASSIGNMENT --shard I/N` "
                          "first, or pass the shard folders to merge")
    newest: dict[tuple[str, str], tuple[Submission, pathlib.Path]] = {}
    for folder in folders:
        if not (folder / "gradebook.db").exists():
            raise GraderError(f"{folder} is not a shard folder (no gradebook.db); pass folders written "
                              "by `grade --shard`")
        for path in sorted((folder / "reports").glob("*/*.json")):
            record = Submission.load(path)
            key = (record.assignment, record.student)
            if key not in newest or record.graded_at > newest[key][0].graded_at:
                newest[key] = (record, folder)
    # a student regraded in the workspace after the shard run keeps the newer result
    for (assignment, student), (record, _) in list(newest.items()):
        mine = ws.root / "reports" / assignment / f"{student}.json"
        if mine.exists() and Submission.load(mine).graded_at > record.graded_at:
            del newest[(assignment, student)]

    merged: dict[str, list[str]] = {}
    for assignment in sorted({a for a, _ in newest}):
        ws.check_assignment(assignment)
        ws.release(assignment)  # the workspace gradebook must know the assignment's cells
        by_folder: dict[pathlib.Path, list[Submission]] = {}
        for (a, _), (record, folder) in sorted(newest.items()):
            if a == assignment:
                by_folder.setdefault(folder, []).append(record)
        with gradebook.lock(ws.db_url):
            for folder, records in by_folder.items():
                keep = {r.student: written.unchanged(written.graded_notebook(ws.root, r.student, assignment),
                                                     written.graded_notebook(folder, r.student, assignment))
                        for r in records}
                gradebook.copy_submissions(f"sqlite:///{folder / 'gradebook.db'}", ws.db_url, assignment,
                                           [r.student for r in records], keep_manual=keep)
                for r in records:
                    dest = ws.root / "autograded" / r.student / assignment
                    shutil.rmtree(dest, ignore_errors=True)
                    produced = folder / "autograded" / r.student / assignment
                    if produced.exists():
                        shutil.copytree(produced, dest)
                    r.save(ws.root / "reports" / assignment / f"{r.student}.json")
                log(f"merged {len(records)} submission(s) of {assignment} from {folder}")
        merged[assignment] = sorted(s for a, s in newest if a == assignment)
    return merged

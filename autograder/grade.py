"""Grade one assignment for every collected student: repair, flag, autograde in parallel, merge.

nbgrader's gradebook is one database, SQLite by default, and several ``nbgrader autograde``
processes writing one SQLite file lose or duplicate rows under contention. So each of the ``jobs``
workers grades its share of the students in a private folder with a private SQLite gradebook
(a copy of the assignment's cells), and the parent process alone writes the results into the
workspace's gradebook, student by student: a regrade replaces a student's submission whole.

Per student, ``reports/ASSIGNMENT/STUDENT.json`` records: status (graded, corrupt, crashed),
score, repair report, flags, timed-out and out-of-memory cells, and cell errors.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from autograder import flags as flagging
from autograder import repair as repairing
from autograder.workspace import Workspace


def students_for(ws: Workspace, assignment: str) -> list[str]:
    return sorted(k.split("/")[0] for k in ws.manifest() if k.split("/")[1] == assignment)


def prepare(ws: Workspace, assignment: str, student: str, release: pathlib.Path) -> dict:
    """Repair the student's original into ``submitted/`` and scan it for flags."""
    entry = ws.manifest()[f"{student}/{assignment}"]
    original = ws.root / "originals" / entry["file"]
    dest = ws.root / "submitted" / student / assignment / f"{assignment}.ipynb"
    shutil.rmtree(dest.parent, ignore_errors=True)
    record = {"student": student, "assignment": assignment, "original": entry["file"],
              "status": "pending", "flags": [], "timeouts": [], "memory_errors": [], "errors": {}}
    try:
        record["repair"] = repairing.repair_file(original, release, dest)
    except (ValueError, UnicodeError) as e:
        record["status"] = "corrupt"
        record["detail"] = f"{entry['file']}: {e}"
        return record
    (dest.parent / "timestamp.txt").write_text(
        dt.datetime.fromtimestamp(original.stat().st_mtime, dt.timezone.utc).isoformat())
    rel = repairing.load_json(release)
    fixed = repairing.load_json(dest)
    targets = {repairing._meta(c).get("grade_id"): flagging.defined_names(repairing._src(c))
               for c in rel["cells"] if repairing.is_answer(c)}
    student_cells, context = [], []
    for c in fixed["cells"]:
        gid = repairing._meta(c).get("grade_id")
        if c.get("cell_type") != "code":
            continue
        if gid in targets:
            student_cells.append((gid, repairing._src(c), targets[gid]))
        elif not repairing._meta(c):
            student_cells.append(("added cell", repairing._src(c), set()))
        else:
            context.append(repairing._src(c))
    record["flags"] = flagging.scan(student_cells, context)
    return record


def _worker(ws: Workspace, assignment: str, students: list[str], folder: pathlib.Path,
            template_db: pathlib.Path) -> dict:
    """Autograde ``students`` in ``folder`` with a private gradebook; returns {student: error}."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for s in students:
        shutil.copytree(ws.root / "submitted" / s / assignment, folder / "submitted" / s / assignment)
    db = folder / "gradebook.db"
    shutil.copyfile(template_db, db)
    ws.write_nbgrader_config(folder, f"sqlite:///{db}")
    log = folder / "autograde.log"
    done = ws.nbgrader(["autograde", assignment, "--log-level=INFO"], cwd=folder, log=log)
    text = log.read_text()
    failed = {}
    for s in students:
        if f"for student '{s}'" in text:
            failed[s] = _error_for(text, s)
    if done.returncode and not failed:
        failed = {s: "nbgrader autograde failed: " + done.stderr[-500:] for s in students}
    return failed


def _error_for(log: str, student: str) -> str:
    if "DeadKernelError" in log or "Kernel died" in log:
        return "the kernel died while running the notebook (os._exit, a crash or the OS killed it)"
    if "UnresponsiveKernelError" in log or "became unresponsive" in log:
        return "the kernel stopped responding and could not be interrupted"
    return "nbgrader could not grade this notebook; see autograde.log"


def merge(ws: Workspace, assignment: str, worker_db: pathlib.Path, students: list[str]) -> None:
    """Copy the students' submissions from a worker's gradebook into the workspace gradebook."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own autoflush noise
    with Gradebook(f"sqlite:///{worker_db}") as src, Gradebook(ws.db_url) as dst:
        for s in students:
            try:
                sub = src.find_submission(assignment, s)
            except MissingEntry:
                continue
            dst.update_or_create_student(s)
            try:
                dst.remove_submission(assignment, s)
            except MissingEntry:
                pass
            dst.add_submission(assignment, s, timestamp=sub.timestamp)
            for nb in sub.notebooks:
                dnb = dst.find_submission_notebook(nb.name, assignment, s)
                dnb.flagged = nb.flagged
                for g in nb.grades:
                    dg = dst.find_grade(g.name, nb.name, assignment, s)
                    dg.auto_score, dg.manual_score = g.auto_score, g.manual_score
                    dg.extra_credit, dg.needs_manual_grade = g.extra_credit, g.needs_manual_grade
                for cm in nb.comments:
                    dc = dst.find_comment(cm.name, nb.name, assignment, s)
                    dc.auto_comment, dc.manual_comment = cm.auto_comment, cm.manual_comment
            dst.db.commit()


def inspect_autograded(path: pathlib.Path, record: dict) -> None:
    """Fill timeouts, memory errors, cell errors and per-cell scores from the graded notebook."""
    nb = json.loads(path.read_text())
    for c in nb["cells"]:
        gid = repairing._meta(c).get("grade_id")
        for out in c.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            ename, evalue = out.get("ename", ""), str(out.get("evalue", ""))
            label = gid or "ungraded cell"
            if ename == "CellTimeoutError":
                record["timeouts"].append(label)
            elif ename == "MemoryError" or "can't allocate memory" in evalue or "Cannot allocate memory" in evalue:
                record["memory_errors"].append(label)
            if gid:
                record["errors"][gid] = f"{ename}: {evalue}"[:300]


def scores(ws: Workspace, assignment: str, student: str) -> tuple[float, float, dict]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(ws.db_url) as gb:
        max_score = gb.find_assignment(assignment).max_score
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return 0.0, max_score, {}
        cells = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
        return sub.score, max_score, cells


def grade(ws: Workspace, assignment: str, jobs: int = 1, students: list[str] | None = None,
          log=print) -> dict[str, dict]:
    """Grade ``assignment`` for ``students`` (default: all collected). Returns {student: record}."""
    t0 = time.time()
    known = students_for(ws, assignment)
    students = [s for s in (students or known) if s in known]
    if not students:
        raise SystemExit(f"no collected submissions for {assignment}; run `collect` first")
    release = ws.release(assignment)  # also syncs the gradebook's copy of the assignment
    reports = ws.root / "reports" / assignment
    reports.mkdir(parents=True, exist_ok=True)
    records = {s: prepare(ws, assignment, s, release) for s in students}
    todo = [s for s in students if records[s]["status"] == "pending"]

    # template gradebook: the assignment's cells and nothing else
    grading = ws.root / ".grading" / assignment
    shutil.rmtree(grading, ignore_errors=True)
    grading.mkdir(parents=True)
    template = grading / "template.db"
    tfolder = grading / "template"
    tfolder.mkdir()
    ws.write_nbgrader_config(tfolder, f"sqlite:///{template}")
    done = ws.nbgrader(["generate_assignment", assignment, "--force", "--log-level=WARN"], cwd=tfolder,
                       log=grading / "template.log")
    if done.returncode:
        raise RuntimeError(f"could not build the template gradebook:\n{done.stderr[-2000:]}")

    jobs = max(1, min(jobs, len(todo) or 1))
    chunks = [todo[k::jobs] for k in range(jobs)]
    with ThreadPoolExecutor(jobs) as pool:  # threads only wait on nbgrader processes
        futures = [pool.submit(_worker, ws, assignment, chunk, grading / f"worker{k}", template)
                   for k, chunk in enumerate(chunks) if chunk]
        failures = [f.result() for f in futures]
    # one writer: merge worker gradebooks into the workspace gradebook, then record
    for k, chunk in enumerate(chunks):
        if not chunk:
            continue
        folder = grading / f"worker{k}"
        merge(ws, assignment, folder / "gradebook.db", chunk)
        shutil.copyfile(folder / "autograde.log", reports / f"autograde-worker{k}.log")
        for s in chunk:
            target = ws.root / "autograded" / s / assignment
            shutil.rmtree(target, ignore_errors=True)
            produced = folder / "autograded" / s / assignment
            if s in failures[k] or not produced.exists():
                records[s]["status"] = "crashed"
                records[s]["detail"] = failures[k].get(s, "no graded notebook was produced")
                continue
            shutil.copytree(produced, target)
            records[s]["status"] = "graded"
            inspect_autograded(target / f"{assignment}.ipynb", records[s])
    for s in students:
        r = records[s]
        r["score"], r["max_score"], r["cells"] = scores(ws, assignment, s)
        if r["status"] != "graded":
            r["score"] = 0.0
        (reports / f"{s}.json").write_text(json.dumps(r, indent=1, sort_keys=True) + "\n")
    problems = ws.verify_originals()
    if problems:
        raise RuntimeError("originals changed during grading:\n" + "\n".join(problems))
    elapsed = time.time() - t0
    log(f"graded {assignment}: {len(students)} submissions, jobs={jobs}, {elapsed:.1f} s")
    for s in students:
        r = records[s]
        notes = [r["status"]] + (["repaired"] if r.get("repair", {}).get("repaired") else []) \
            + (["FLAGGED"] if r["flags"] else []) + (["timeout"] if r["timeouts"] else []) \
            + (["memory"] if r["memory_errors"] else [])
        log(f"  {s:20s} {r['score']:6.1f} / {r.get('max_score', 0):.0f}  {', '.join(notes)}")
    return records


def repair_only(ws: Workspace, assignment: str) -> dict[str, dict]:
    """Repair and flag without grading (``python -m autograder repair``)."""
    release = ws.release(assignment)
    out = {}
    for s in students_for(ws, assignment):
        out[s] = prepare(ws, assignment, s, release)
    return out

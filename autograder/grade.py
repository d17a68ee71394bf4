"""Grade one assignment: repair, flag, autograde in parallel, copy the results into one gradebook.

nbgrader's gradebook is one database, and several ``nbgrader autograde`` processes writing one
SQLite file lose or duplicate rows. So each of the ``jobs`` workers grades its share of the students
in a private folder with a private SQLite gradebook (a copy of a template that holds the assignment
and nothing else), and this process alone copies their results into the target gradebook, student by
student, under the gradebook's lock: a regrade replaces a student's submission whole.

The target is the workspace (its gradebook, ``reports/``, ``autograded/``), or with ``shard`` a
shard folder ``shards/ASSIGNMENT/I-of-N/`` with its own SQLite gradebook, which ``merge`` later
copies into the workspace: shards can run at the same time on several machines that share the
workspace folder (or get a copy of it and send the shard folder back).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import pathlib
import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from autograder import cells, gradebook, written
from autograder import flags as flagging
from autograder import repair as repairing
from autograder.errors import NothingToGrade, OriginalsChanged
from autograder.record import Submission
from autograder.workspace import Workspace


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based): a stable share of the class, by a hash of the id."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard {text!r}: write I/N, e.g. 1/4 for the first of four shards") from None
        if not 1 <= i <= n:
            raise ValueError(f"--shard {text!r}: I must be between 1 and N")
        return cls(i, n)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        return f"{self.index}-of-{self.count}"

    def holds(self, student: str) -> bool:
        """A student's shard depends on the id alone: adding students never moves the others."""
        return int(hashlib.sha256(student.encode()).hexdigest(), 16) % self.count == self.index - 1


@dataclass
class Target:
    """Where results go: a gradebook and the folder holding ``reports/`` and ``autograded/``."""

    root: pathlib.Path
    db_url: str

    def report(self, assignment: str, student: str) -> pathlib.Path:
        return self.root / "reports" / assignment / f"{student}.json"


def shard_target(ws: Workspace, assignment: str, shard: Shard) -> Target:
    root = ws.root / "shards" / assignment / shard.name
    return Target(root, f"sqlite:///{root / 'gradebook.db'}")


def students_for(ws: Workspace, assignment: str) -> list[str]:
    return sorted(k.split("/")[0] for k in ws.manifest() if k.split("/")[1] == assignment)


def prepare(ws: Workspace, assignment: str, student: str, release: dict) -> Submission:
    """Repair the student's original into ``submitted/`` (demonstration cells replaced by one comment:
    the grader runs what the grades depend on) and scan it for flags."""
    entry = ws.manifest()[f"{student}/{assignment}"]
    original = ws.root / "originals" / entry["file"]
    dest = ws.root / "submitted" / student / assignment / f"{assignment}.ipynb"
    shutil.rmtree(dest.parent, ignore_errors=True)
    record = Submission(student, assignment, original=entry["file"])
    try:
        fixed, record.repair = repairing.repair(cells.read(original), release)
    except (ValueError, UnicodeError) as e:
        record.status, record.detail = "corrupt", f"{entry['file']}: {e}"
        return record
    dest.parent.mkdir(parents=True, exist_ok=True)
    cells.write(cells.without_demos(fixed), dest)  # what no graded cell needs is not run
    (dest.parent / "timestamp.txt").write_text(
        dt.datetime.fromtimestamp(original.stat().st_mtime, dt.timezone.utc).isoformat())
    record.flags = flagging.flag_notebook(fixed, release)
    return record


class Worker:
    """An nbgrader process with a folder of its own, started before its work is ready: it imports
    nbgrader while ``grade`` builds the release and repairs the submissions."""

    def __init__(self, ws: Workspace, folder: pathlib.Path):
        shutil.rmtree(folder, ignore_errors=True)
        self.ws, self.folder = ws, folder
        self.process = ws.start_nbgrader(folder)

    def autograde(self, assignment: str, students: list[str], template_db: pathlib.Path) -> dict[str, str]:
        """Autograde ``students`` with a private gradebook; returns {student: error}."""
        for s in students:
            shutil.copytree(self.ws.root / "submitted" / s / assignment, self.folder / "submitted" / s / assignment)
        db = self.folder / "gradebook.db"
        shutil.copyfile(template_db, db)
        self.ws.write_nbgrader_config(self.folder, f"sqlite:///{db}")
        args = ["autograde", assignment, "--log-level=INFO"]
        out, err = self.process.communicate(shlex.join(args) + "\n")
        text = f"$ nbgrader {shlex.join(args)}\n{out}\n{err}"
        (self.folder / "autograde.log").write_text(text)
        failed = {s: _error_for(text) for s in students if f"for student '{s}'" in text}
        if self.process.returncode and not failed:
            failed = {s: "nbgrader autograde failed: " + err[-500:] for s in students}
        return failed

    def stop(self) -> None:
        """End a worker that was given no work (or is still running after an error)."""
        if self.process.poll() is None:
            try:
                self.process.communicate("\n", timeout=60)
            except (subprocess.TimeoutExpired, ValueError):
                self.process.kill()
                self.process.wait()


def _error_for(log: str) -> str:
    if "DeadKernelError" in log or "Kernel died" in log:
        return "the kernel died while running the notebook (os._exit, a crash or the OS killed it)"
    if "UnresponsiveKernelError" in log or "became unresponsive" in log:
        return "the kernel stopped responding and could not be interrupted"
    return "nbgrader could not grade this notebook; see autograde.log"


def inspect_autograded(path: pathlib.Path, record: Submission) -> None:
    """Fill timeouts, memory errors and cell errors from the graded notebook."""
    for c in cells.read(path)["cells"]:
        gid = cells.grade_id(c)
        for out in c.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            ename, evalue = out.get("ename", ""), str(out.get("evalue", ""))
            label = gid or "ungraded cell"
            if ename == "CellTimeoutError":
                record.timeouts.append(label)
            elif ename == "MemoryError" or "allocate memory" in evalue:
                record.memory_errors.append(label)
            if gid:
                record.errors[gid] = f"{ename}: {evalue}"[:300]


def grade(ws: Workspace, assignment: str, jobs: int = 1, students: list[str] | None = None,
          shard: Shard | None = None, log=print) -> dict[str, Submission]:
    """Grade ``assignment`` for ``students`` (default: all collected; with ``shard``, only its share).
    Returns {student: record}. Raises ``GraderError`` subclasses for problems of the whole run."""
    t0 = time.time()
    ws.check_assignment(assignment)
    known = students_for(ws, assignment)
    unknown = sorted(set(students or []) - set(known))
    if unknown:
        raise NothingToGrade(f"no collected submission of {assignment} for {', '.join(unknown)}; "
                             "check the id or run `collect` first")
    chosen = [s for s in (students or known) if shard is None or shard.holds(s)]
    if not chosen:
        where = f" in shard {shard}" if shard else ""
        raise NothingToGrade(f"no collected submissions of {assignment}{where}; run `collect` first")
    run = ws.root / ".grading" / assignment / (shard.name if shard else "all")
    shutil.rmtree(run, ignore_errors=True)
    workers = [Worker(ws, run / f"worker{k}") for k in range(max(1, min(jobs, len(chosen))))]
    try:
        template = run / "template.db"
        release = cells.read(ws.release(assignment, folder=run / "template", db_url=f"sqlite:///{template}"))
        records = {s: prepare(ws, assignment, s, release) for s in chosen}
        todo = [s for s in chosen if records[s].status == "pending"]

        target = shard_target(ws, assignment, shard) if shard else Target(ws.root, ws.db_url)
        jobs = max(1, min(jobs, len(todo) or 1, len(workers)))
        chunks = [todo[k::jobs] for k in range(jobs)]
        with ThreadPoolExecutor(jobs + 1) as pool:  # threads only wait on nbgrader processes
            if shard is None:  # meanwhile the workspace gradebook learns the assignment (for the copy)
                synced = pool.submit(ws.release, assignment)
            elif not (target.root / "gradebook.db").exists():
                target.root.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(template, target.root / "gradebook.db")
            futures = [pool.submit(workers[k].autograde, assignment, chunk, template)
                       for k, chunk in enumerate(chunks) if chunk]
            failures = {s: why for f in futures for s, why in f.result().items()}
            if shard is None:
                synced.result()
    finally:
        for w in workers:
            w.stop()

    graded_at = dt.datetime.now(dt.timezone.utc).isoformat()
    with gradebook.lock(target.db_url):
        for k, chunk in enumerate(chunks):
            if chunk:
                keep = {s: written.unchanged(written.graded_notebook(target.root, s, assignment),
                                             written.graded_notebook(run / f"worker{k}", s, assignment))
                        for s in chunk}
                gradebook.copy_submissions(f"sqlite:///{run / f'worker{k}' / 'gradebook.db'}", target.db_url,
                                           assignment, chunk, keep_manual=keep)
        corrupt = [s for s in chosen if records[s].status == "corrupt"]
        gradebook.copy_submissions(f"sqlite:///{template}", target.db_url, assignment, corrupt)  # removes
        _collect_results(ws, assignment, run, chunks, failures, records, target)
        by_student = {sc.student: sc for sc in gradebook.scores(target.db_url, assignment)}
        max_score = gradebook.max_scores(target.db_url).get(assignment, 0.0)
        for s, r in records.items():
            r.graded_at, r.shard, r.max_score = graded_at, str(shard or ""), max_score
            if s in by_student:
                r.cells = by_student[s].cells
                r.score = by_student[s].score if r.status == "graded" else 0.0
                r.waiting = by_student[s].waiting if r.status == "graded" else []
            r.save(target.report(assignment, s))
    problems = ws.verify_originals()
    if problems:
        raise OriginalsChanged("originals changed during grading (restore them from the LMS download):\n"
                               + "\n".join(problems))
    log(f"graded {assignment}{f' shard {shard}' if shard else ''}: {len(chosen)} submissions, "
        f"jobs={jobs}, {time.time() - t0:.1f} s")
    for s, r in records.items():
        notes = [r.status] + (["repaired"] if r.repair and r.repair.repaired else []) \
            + (["FLAGGED"] if r.flags else []) + (["timeout"] if r.timeouts else []) \
            + (["memory"] if r.memory_errors else []) + ([r.detail] if r.detail else []) \
            + ([f"{len(r.waiting)} written answer(s) waiting"] if r.waiting else [])
        log(f"  {s:20s} {r.score:6.1f} / {r.max_score:.0f}  {', '.join(notes)}")
    if any(r.waiting for r in records.values()):
        log(f"written answers wait for a person: `autograder written {assignment}` writes them to a CSV to score "
            "(then `autograder written --import FILE`), or score them in nbgrader's formgrader")
    return records


def _collect_results(ws, assignment, run, chunks, failures, records, target: Target) -> None:
    """Graded notebooks and logs from the workers into the target; statuses into the records."""
    logs = target.root / "reports" / assignment
    logs.mkdir(parents=True, exist_ok=True)
    for k, chunk in enumerate(chunks):
        if not chunk:
            continue
        folder = run / f"worker{k}"
        shutil.copyfile(folder / "autograde.log", logs / f"autograde-worker{k}.log")
        for s in chunk:
            dest = target.root / "autograded" / s / assignment
            shutil.rmtree(dest, ignore_errors=True)
            produced = folder / "autograded" / s / assignment
            if s in failures or not produced.exists():
                records[s].status = "crashed"
                records[s].detail = failures.get(s, "no graded notebook was produced")
                continue
            shutil.copytree(produced, dest)
            records[s].status = "graded"
            inspect_autograded(dest / f"{assignment}.ipynb", records[s])


def repair_only(ws: Workspace, assignment: str) -> dict[str, Submission]:
    """Repair and flag without grading (``autograder repair``)."""
    ws.check_assignment(assignment)
    release = cells.read(ws.release(assignment))
    return {s: prepare(ws, assignment, s, release) for s in students_for(ws, assignment)}

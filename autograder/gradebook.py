"""The nbgrader gradebook: open it with clear errors, lock it, copy submissions between gradebooks.

Grading never lets two processes write one gradebook at once: workers grade into private SQLite
files, and one process copies their results into the target gradebook (the workspace's, or a
shard's) under ``lock``. The lock is a file lock next to a SQLite file and a PostgreSQL advisory
lock on a server, so several graders (machines, people) can share one PostgreSQL gradebook.
"""

from __future__ import annotations

import contextlib
import fcntl
import pathlib
import warnings
from dataclasses import dataclass

from autograder.errors import GradebookError

LOCK_KEY = 0x76697467  # PostgreSQL advisory lock id of this tool ("vitg")


def normalise(url: str) -> str:
    """``postgresql://...`` with the driver that is installed (psycopg 3, else psycopg2): SQLAlchemy's
    default driver for the bare scheme differs between versions."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    for driver in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(driver) is not None:
            return url.replace("postgresql://", f"postgresql+{driver}://", 1)
    return url


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (a malformed URL is reported by the caller)
        return url.split("@")[-1]


def schema_revision() -> str:
    """The revision of nbgrader's gradebook schema (the head of its alembic migrations), which nbgrader
    writes into every gradebook it creates. Read here in this process: nbgrader's own
    ``get_alembic_version`` starts the ``alembic`` command for it, a new Python process that costs
    about 2 s of every ``grade`` (each creates a template gradebook)."""
    import nbgrader.api
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(pathlib.Path(nbgrader.api.__file__).parent / "alembic")).get_current_head()


def read_schema_revision_in_process() -> None:
    """Make nbgrader, in this process, create gradebooks with ``schema_revision``."""
    import nbgrader.api

    nbgrader.api.get_alembic_version = schema_revision


@contextlib.contextmanager
def open_gradebook(url: str):
    """nbgrader's ``Gradebook`` for ``url``; a missing driver or server becomes a ``GradebookError``."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning, SQLAlchemyError

    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own autoflush noise
    read_schema_revision_in_process()
    try:
        gb = Gradebook(url)
    except ModuleNotFoundError as e:
        raise GradebookError(f"the gradebook {shown(url)} needs the Python package {e.name!r}; install it "
                             "(for PostgreSQL: pip install psycopg2-binary)") from None
    except (SQLAlchemyError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GradebookError(f"cannot open the gradebook {shown(url)}: {first}; check that the database "
                             "server runs and the URL (--db) is right") from None
    try:
        yield gb
    finally:
        gb.close()


def check(url: str) -> None:
    """Open the gradebook once: creates nbgrader's tables in a new database, or raises."""
    with open_gradebook(url):
        pass


@contextlib.contextmanager
def lock(url: str):
    """Hold the gradebook's write lock (waits for other grading commands)."""
    if url.startswith("sqlite:///"):
        path = pathlib.Path(url[len("sqlite:///"):] + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    elif url.startswith("postgresql"):
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(url, poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
        engine.dispose()
    else:
        yield


def copy_submissions(src_url: str, dst_url: str, assignment: str, students: list[str],
                     keep_manual: dict[str, set[str]] | None = None) -> None:
    """Make ``dst`` hold exactly ``src``'s submission of each student (none if ``src`` has none).

    A student's old submission in ``dst`` is removed first, so a regrade replaces it whole and
    nothing is ever doubled. ``keep_manual``: {student: grade ids} whose score and comment given by a
    person in ``dst`` survive the copy (a written answer the regraded notebook did not change).
    ``dst`` must already know the assignment (``generate_assignment``)."""
    from nbgrader.api import MissingEntry

    keep_manual = keep_manual or {}
    with open_gradebook(src_url) as src, open_gradebook(dst_url) as dst:
        for s in students:
            kept = _manual_scores(dst, assignment, s, keep_manual.get(s, set()))
            with contextlib.suppress(MissingEntry):
                dst.remove_submission(assignment, s)
            try:
                sub = src.find_submission(assignment, s)
            except MissingEntry:
                dst.db.commit()
                continue
            dst.update_or_create_student(s)
            dst.add_submission(assignment, s, timestamp=sub.timestamp)
            for nb in sub.notebooks:
                dnb = dst.find_submission_notebook(nb.name, assignment, s)
                dnb.flagged = nb.flagged
                for g in nb.grades:
                    dg = dst.find_grade(g.name, nb.name, assignment, s)
                    dg.auto_score, dg.manual_score = g.auto_score, g.manual_score
                    dg.extra_credit, dg.needs_manual_grade = g.extra_credit, g.needs_manual_grade
                    if (nb.name, g.name) in kept:
                        dg.manual_score, dg.needs_manual_grade = kept[(nb.name, g.name)][0], False
                for cm in nb.comments:
                    dc = dst.find_comment(cm.name, nb.name, assignment, s)
                    dc.auto_comment, dc.manual_comment = cm.auto_comment, cm.manual_comment
                    if (nb.name, cm.name) in kept:
                        dc.manual_comment = kept[(nb.name, cm.name)][1]
            dst.db.commit()


def _manual_scores(gb, assignment: str, student: str, ids: set[str]) -> dict[tuple[str, str], tuple]:
    """{(notebook, grade id): (manual score, manual comment)} of ``student`` for ``ids`` scored by a person."""
    from nbgrader.api import MissingEntry

    if not ids:
        return {}
    try:
        sub = gb.find_submission(assignment, student)
    except MissingEntry:
        return {}
    comments = {(nb.name, c.name): c.manual_comment for nb in sub.notebooks for c in nb.comments}
    return {(nb.name, g.name): (g.manual_score, comments.get((nb.name, g.name)))
            for nb in sub.notebooks for g in nb.grades if g.name in ids and g.manual_score is not None}


@dataclass
class Score:
    student: str
    assignment: str
    score: float
    max_score: float
    cells: dict[str, float | None]
    waiting: list[str]  # graded cells no person has scored yet (written answers)


def scores(url: str, assignment: str | None = None) -> list[Score]:
    """Every submission in the gradebook (of ``assignment``, or of all assignments)."""
    with open_gradebook(url) as gb:
        out = []
        for a in gb.assignments:
            if assignment is not None and a.name != assignment:
                continue
            for sub in a.submissions:
                cells = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
                waiting = sorted(g.name for nb in sub.notebooks for g in nb.grades if g.needs_manual_grade)
                out.append(Score(sub.student.id, a.name, float(sub.score), float(a.max_score), cells, waiting))
        return out


def max_scores(url: str) -> dict[str, float]:
    with open_gradebook(url) as gb:
        return {a.name: float(a.max_score) for a in gb.assignments}


def student_ids(url: str) -> list[str]:
    with open_gradebook(url) as gb:
        return sorted(s.id for s in gb.students)

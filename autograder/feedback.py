"""Feedback HTML per student: a summary of every exercise, then the graded notebook, no hidden tests.

nbgrader's ``generate_feedback`` renders the autograded notebook, hidden tests included (autograde
restores them to grade). The workspace configures it (``Workspace.write_nbgrader_config``) with:

- ``GetGrades``: nbgrader's scores and comments, plus whether a written answer still waits for a
  person (``waiting``);
- ``FeedbackPage``: names every graded cell by its exercise (the heading above it), replaces each
  ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` block with one comment line, drops what the
  hidden code displayed (an ``Out[...]`` value, a figure) and the traceback of a failing check (a
  traceback quotes the hidden code; the error type and message stay), and builds the summary;
- the template ``autograder/templates/vitcourse_feedback``: the summary at the top (each exercise's
  points and, where points were lost, the message and hint of the failed check), failures in a red
  box with their whole message, maths typeset offline by MathJax inlined into the page (the file is
  all a student needs, no network).
"""

from __future__ import annotations

import html
import pathlib
import re

from nbgrader.preprocessors import GetGrades as NbgraderGetGrades
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.cells import without_hidden_tests
from autograder.errors import NbgraderFailed
from autograder.workspace import Workspace

HERE = pathlib.Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
TEMPLATE = "vitcourse_feedback"
MATHJAX = HERE / "vendor" / "mathjax" / "tex-svg-full.js"  # authoring/vendor_assets.py puts it there
PLACEHOLDER = "# (hidden tests: run by the grader, not shown)"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
HEADING = re.compile(r"^#{1,6}\s+(.*\S)\s*$", re.M)
POINTS = re.compile(r"\s*\(\d+(?:\.\d+)? points?\)")
HIDDEN_OUTPUTS = {"execute_result", "display_data"}


def hide(source: str) -> str:
    return without_hidden_tests(source, PLACEHOLDER)


def exercise_title(heading: str) -> str:
    """``### Exercise 1 — `attention` (4 points)`` -> ``Exercise 1 — `attention```."""
    return POINTS.sub("", heading).strip()


def inline_html(text: str) -> str:
    """Escaped text with ``code`` spans, for a title in the summary."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def failure_message(cell) -> str:
    """What a graded code cell that lost points says: its error, or what it wrote on stderr."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return ANSI.sub("", f"{out.get('ename', 'Error')}: {out.get('evalue', '')}").strip()
    stderr = "".join(o.get("text", "") for o in cell.get("outputs", [])
                     if o.get("output_type") == "stream" and o.get("name") == "stderr")
    if stderr.strip():
        return "the check wrote to stderr (a graded cell must run silently there): " + ANSI.sub("", stderr).strip()
    return "the check did not pass"


class GetGrades(NbgraderGetGrades):
    """nbgrader's ``GetGrades``, and ``waiting``: a written answer no person has scored yet."""

    def _get_score(self, cell, resources) -> None:
        super()._get_score(cell, resources)
        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"], self.notebook_id,
                                          self.assignment_id, self.student_id)
        cell.metadata.nbgrader["waiting"] = bool(grade.needs_manual_grade)


class FeedbackPage(NbGraderPreprocessor):
    """Exercise names, the summary, and no hidden tests (code or output) in the page."""

    def preprocess(self, nb, resources):
        heading, titles = "", []
        for cell in nb.cells:
            if cell.cell_type == "markdown" and "nbgrader" not in cell.metadata:
                found = HEADING.findall(cell.source)
                heading = found[-1] if found else heading
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                titles.append((cell, exercise_title(heading) or meta["grade_id"]))
            elif meta.get("solution"):
                meta["exercise"] = inline_html(exercise_title(heading) or meta.get("grade_id", ""))
        counts: dict[str, int] = {}
        for _, title in titles:
            counts[title] = counts.get(title, 0) + 1
        seen: dict[str, int] = {}
        rows = []
        for cell, title in titles:
            seen[title] = seen.get(title, 0) + 1
            if counts[title] > 1:
                title = f"{title}, check {seen[title]} of {counts[title]}"
            rows.append(self._row(cell, title))
        for cell in nb.cells:
            self._hide(cell)
        resources["vitcourse"] = {
            "rows": rows,
            "waiting_points": sum(r["points"] for r in rows if r["status"] == "waiting"),
            "title": next((HEADING.findall(c.source)[0] for c in nb.cells
                           if c.cell_type == "markdown" and HEADING.findall(c.source)), ""),
            "mathjax": mathjax_script(),
        }
        return nb, resources

    @staticmethod
    def _row(cell, title: str) -> dict:
        meta = cell.metadata.nbgrader
        score, points = float(meta.get("score") or 0.0), float(meta.get("points") or 0.0)
        written = cell.cell_type == "markdown"
        if written and meta.get("waiting"):
            status, message = "waiting", "written answer: a person scores it"
        elif written:
            status = "passed" if score >= points else "lost"
            message = meta.get("comment") or ("" if score >= points else "no answer" if score == 0 else "")
        elif score >= points:
            status, message = "passed", ""
        else:
            status, message = "failed", failure_message(cell)
        meta["exercise"] = inline_html(title)
        meta["status"] = status
        return {"id": meta["grade_id"], "title": inline_html(title), "score": score, "points": points,
                "status": status, "message": message, "written": written}

    @staticmethod
    def _hide(cell) -> None:
        if cell.cell_type != "code" or "BEGIN HIDDEN TESTS" not in cell.source:
            return
        cell.source = hide(cell.source)
        # the hidden block ends the cell: an Out[...] value or a display comes from it
        cell.outputs = [o for o in cell.get("outputs", []) if o.get("output_type") not in HIDDEN_OUTPUTS]
        for out in cell.outputs:
            if out.get("output_type") == "error":
                out["traceback"] = []
                out["evalue"] = ANSI.sub("", str(out.get("evalue", "")))


def mathjax_script() -> str:
    """The vendored MathJax (TeX input, SVG output: no font files), to inline into a page."""
    if not MATHJAX.is_file():
        raise NbgraderFailed(f"{MATHJAX} is missing; run `python -m authoring vendor-assets` in the course repository")
    text = MATHJAX.read_text(encoding="utf-8")
    return text.replace("</script", "<\\/script")


def feedback(ws: Workspace, assignment: str) -> list[str]:
    """Write ``feedback/STUDENT/ASSIGNMENT/ASSIGNMENT.html`` for every graded student."""
    ws.check_assignment(assignment)
    ws.write_nbgrader_config(ws.root, ws.db_url)  # a workspace made by an older release gets today's page
    done = ws.nbgrader(["generate_feedback", assignment, "--force", "--log-level=WARN"],
                       log=ws.root / "reports" / assignment / "generate_feedback.log")
    if done.returncode:
        raise NbgraderFailed(f"nbgrader generate_feedback {assignment} failed (grade it first?):\n"
                             f"{done.stderr[-3000:]}")
    return sorted(str(p.relative_to(ws.root)) for p in (ws.root / "feedback").glob(f"*/{assignment}/*.html"))

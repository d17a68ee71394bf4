"""Feedback HTML per student, without the hidden test code.

nbgrader's ``generate_feedback`` renders the autograded notebook, hidden tests included (autograde
restores them to grade). ``HideHiddenTests`` (in the workspace's ``GenerateFeedback.preprocessors``)
replaces each ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` block with one comment line and
shortens the traceback of a failing graded cell to its last line (a traceback quotes the hidden
code); the error type and message, the scores and every other output stay.
"""

from __future__ import annotations

import re

from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.cells import without_hidden_tests
from autograder.errors import NbgraderFailed
from autograder.workspace import Workspace

PLACEHOLDER = "# (hidden tests: run by the grader, not shown)"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def hide(source: str) -> str:
    return without_hidden_tests(source, PLACEHOLDER)


class HideHiddenTests(NbGraderPreprocessor):
    """Remove hidden test code from graded cells and from their tracebacks."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
            cell.source = hide(cell.source)
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    out["traceback"] = [ANSI.sub("", f"{out.get('ename', 'Error')}: {out.get('evalue', '')}")]
        return cell, resources


def feedback(ws: Workspace, assignment: str) -> list[str]:
    """Write ``feedback/STUDENT/ASSIGNMENT/ASSIGNMENT.html`` for every graded student."""
    ws.check_assignment(assignment)
    done = ws.nbgrader(["generate_feedback", assignment, "--force", "--log-level=WARN"],
                       log=ws.root / "reports" / assignment / "generate_feedback.log")
    if done.returncode:
        raise NbgraderFailed(f"nbgrader generate_feedback {assignment} failed (grade it first?):\n"
                             f"{done.stderr[-3000:]}")
    return sorted(str(p.relative_to(ws.root)) for p in (ws.root / "feedback").glob(f"*/{assignment}/*.html"))

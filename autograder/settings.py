"""Settings shared by the release step and every grading workspace."""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile

REPO_ROOT = str(pathlib.Path(__file__).resolve().parent.parent)
COURSE_ID = "vit-from-scratch"
# The release step needs a gradebook only in passing; keep it out of the repository.
DEFAULT_DB_URL = f"sqlite:///{tempfile.gettempdir()}/vitcourse-release-gradebook.db"

# The stub a student sees in place of a solution.
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
# Seconds a single cell may run while grading (the longest graded cell runs a few seconds).
CELL_TIMEOUT_S = 120
# Output on stderr that is not a failure (warnings, progress bars).
IGNORE_STDERR_PATTERN = r".*(Warning|warn|it/s|s/it|%\|).*"


def apply(c) -> None:
    """Apply the course's nbgrader settings to a traitlets config ``c``."""
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    c.ExecutePreprocessor.timeout = CELL_TIMEOUT_S
    c.Execute.timeout = CELL_TIMEOUT_S
    c.IgnorePattern.enabled = True
    c.IgnorePattern.pattern = IGNORE_STDERR_PATTERN
    c.Execute.extra_arguments = []
    # A chapter's text source (solutions/NN-name/NN-name.py) holds the solutions: never release it.
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "[0-9][0-9]-*.py"]


def tool_env(**extra: str) -> dict:
    """Environment for nbgrader subprocesses: this Python's bin/ first on PATH (the commands nbgrader
    may start, such as ``alembic`` for ``nbgrader db upgrade``) and the repository importable (for
    ``autograder`` and ``vitcourse``)."""
    env = dict(os.environ, **extra)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [REPO_ROOT, env.get("PYTHONPATH", "")] if p)
    return env

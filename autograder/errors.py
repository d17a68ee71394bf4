"""The grader's errors. Library code raises them; only the command line turns them into exit codes.

Every message names the problem and the fix, in one line where it can.
"""


class GraderError(Exception):
    """A problem the instructor can fix (bad input, wrong folder, unreachable gradebook)."""


class NotAWorkspace(GraderError):
    """The folder is not a grading workspace."""


class UnknownAssignment(GraderError):
    """The course has no such assignment."""


class NothingToGrade(GraderError):
    """No collected submission matches the request."""


class NbgraderFailed(GraderError):
    """An nbgrader command failed for a reason that is not one student's notebook."""


class GradebookError(GraderError):
    """The gradebook cannot be opened or written."""


class OriginalsChanged(GraderError):
    """A collected original no longer hashes as collected."""

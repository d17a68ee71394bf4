"""How the grader runs nbgrader: ``python -m autograder.worker [ARGS]``.

With ``ARGS`` it is ``python -m nbgrader ARGS``. Without, it imports nbgrader at once and then waits
for the arguments on one line of its standard input (an empty line: exit). ``grade`` starts its
workers that way before their work is ready, so that they import nbgrader (seconds of CPU) while it
builds the release and repairs the submissions. Output and exit status are those of ``nbgrader``.

One import is skipped: jsonschema, which nbformat imports, loads ``rfc3987_syntax`` when it is
installed (it comes with Jupyter's own dependencies) to check the ``iri`` string formats, and builds
its grammar at import, about 1.3 s of CPU in every process; no notebook schema uses those formats, and
jsonschema does without the package when it is missing. And one process is not started: nbgrader
asks the ``alembic`` command for its schema revision whenever it creates a gradebook, and the worker
reads it in process instead (``autograder.gradebook.schema_revision``).
"""

from __future__ import annotations

import shlex
import sys

NOT_NEEDED = ["rfc3987_syntax"]


def main(argv: list[str] | None = None) -> int:
    for name in NOT_NEEDED:
        sys.modules.setdefault(name, None)  # `import name` now raises ImportError, as if not installed
    from nbgrader.apps.nbgraderapp import NbGraderApp  # the expensive part

    from autograder.gradebook import read_schema_revision_in_process

    read_schema_revision_in_process()
    args = sys.argv[1:] if argv is None else argv
    if not args:
        args = shlex.split(sys.stdin.readline())
        if not args:
            return 0
    sys.argv = ["nbgrader", *args]
    try:
        NbGraderApp.launch_instance(argv=args)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every chapter's test file shares: its solution notebook, executed once per file.

A chapter file sets ``NOTEBOOK``, imports the two generic checks from ``solution_checks`` and adds
its plausible student bugs (each must fail the graded cell meant to catch it).
"""

import pytest

from nbexec import NotebookRun


@pytest.fixture(scope="module")
def run(request):
    return NotebookRun(request.module.NOTEBOOK)

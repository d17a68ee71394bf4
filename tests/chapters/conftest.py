"""What every chapter's test file shares: its solution notebook, executed once per file, and the
parametrisation of its plausible bugs and correct alternatives.

A chapter file sets ``NOTEBOOK``, imports the generic checks from ``solution_checks`` and defines

    BUGS = {"patchify: column-major grid": Variant({"patchify": patchify_column_major}, "test_patchify"), ...}
    ALTERNATIVES = {"patchify with unfold": Variant({"patchify": patchify_unfold}, "test_patchify"), ...}

Each bug must fail every cell it names; each alternative (a different, correct answer) must pass
every cell it names. Only those cells are rerun.
"""

import pytest

from nbexec import NotebookRun


def pytest_generate_tests(metafunc):
    for name, table in (("bug", "BUGS"), ("alternative", "ALTERNATIVES")):
        if name in metafunc.fixturenames:
            variants = getattr(metafunc.module, table, {})
            metafunc.parametrize(name, list(variants.values()), ids=list(variants))


@pytest.fixture(scope="module")
def run(request):
    return NotebookRun(request.module.NOTEBOOK)

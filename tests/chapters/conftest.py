"""What every chapter's test file shares: its solution notebook, executed once per file, and the
parametrisation of its plausible bugs and correct alternatives.

A chapter's tests live in three modules side by side:

- ``bugs_NN_name.py``: the plausible-bug implementations and the dict ``BUGS``, each bug declaring what
  the student sees before submitting (see ``nbexec.Variant``)::

      BUGS = {"patchify: column-major grid": Variant({"patchify": patchify_column_major}, "test_patchify",
                                                     check="test_patchify", hint="grid order"), ...}

- ``alternatives_NN_name.py``: the correct alternative implementations and the dict
  ``ALTERNATIVES = {"patchify with unfold": Variant({"patchify": patchify_unfold}, "test_patchify"), ...}``
  (it may import shared helpers from the bugs module, never the other way round);
- ``test_NN_name.py``: sets ``NOTEBOOK``, imports the generic checks from ``solution_checks``, imports
  ``BUGS`` and ``ALTERNATIVES`` (this hook reads them as the test module's attributes) and holds the
  chapter's own tests.

A catalogue too long for one short module is split by exercise (``bugs_01_macs.py`` holds the
``vit_macs`` bugs that ``bugs_01_patches.py`` lists). Each bug must fail every cell it names; each
alternative (a different, correct answer) must pass every cell it names. Only those cells are rerun.
A chapter test file without a non-empty ``BUGS`` or ``ALTERNATIVES`` is an error, not a skip.
"""

import pytest

from nbexec import NotebookRun


def pytest_generate_tests(metafunc):
    for name, table in (("bug", "BUGS"), ("alternative", "ALTERNATIVES")):
        if name in metafunc.fixturenames:
            variants = getattr(metafunc.module, table, None)
            if not variants:
                raise pytest.UsageError(f"{metafunc.module.__name__}: no {table} (or an empty one); every chapter "
                                        f"declares its {table.lower()} in a dict named {table}")
            metafunc.parametrize(name, list(variants.values()), ids=list(variants))


@pytest.fixture(scope="module")
def run(request):
    return NotebookRun(request.module.NOTEBOOK)

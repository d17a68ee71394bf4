"""What every chapter's tests share, added from the registry (course.toml): the chapter's solution
notebook, executed once per file, the checks every chapter runs (``solution_checks.py``), and the
parametrisation of its plausible bugs and correct alternatives.

A chapter's tests live in three modules side by side, named by the registry (``Chapter.tests``,
``.bugs``, ``.alternatives``):

- ``bugs_NN_name.py``: the plausible-bug implementations and the dict ``BUGS``, each bug declaring what
  the student sees before submitting (see ``nbexec.Variant``)::

      BUGS = {"patchify: column-major grid": Variant({"patchify": patchify_column_major}, "test_patchify",
                                                     check="test_patchify", hint="grid order"), ...}

- ``alternatives_NN_name.py``: the correct alternative implementations and the dict
  ``ALTERNATIVES = {"patchify with unfold": Variant({"patchify": patchify_unfold}, "test_patchify"), ...}``
  (it may import shared helpers from the bugs module, never the other way round);
- ``test_NN_name.py``: the chapter's own tests, if any (they may use the ``run`` fixture). This hook
  gives the module ``NOTEBOOK``, ``BUGS``, ``ALTERNATIVES`` and every ``test_*`` of ``solution_checks``
  (a name the module defines itself is kept).

A catalogue too long for one short module is split by exercise (``bugs_01_macs.py`` holds the
``vit_macs`` bugs that ``bugs_01_patches.py`` lists). Each bug must fail every cell it names; each
alternative (a different, correct answer) must pass every cell it names. Only those cells are rerun.
A chapter without a non-empty ``BUGS`` or ``ALTERNATIVES`` is an error, not a skip.
"""

import importlib
import pathlib

import pytest

from authoring import registry

import solution_checks
from nbexec import NotebookRun

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHECKS = {name: check for name, check in vars(solution_checks).items() if name.startswith("test_")}


class ChapterTests(pytest.Module):
    """A chapter's test module, completed from the registry with what every chapter's tests share."""

    chapter: registry.Chapter

    def collect(self):
        module = self.obj
        module.NOTEBOOK = self.chapter.source_notebook
        module.BUGS = importlib.import_module(pathlib.Path(self.chapter.bugs).stem).BUGS
        module.ALTERNATIVES = importlib.import_module(pathlib.Path(self.chapter.alternatives).stem).ALTERNATIVES
        for name, check in CHECKS.items():
            vars(module).setdefault(name, check)
        return super().collect()


def pytest_pycollect_makemodule(module_path, parent):
    chapter = next((c for c in registry.chapters() if ROOT / c.tests == module_path), None)
    if chapter is not None:
        module = ChapterTests.from_parent(parent, path=module_path)
        module.chapter = chapter
        return module
    return None


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

"""Suite-wide settings.

The suite runs on 2 workers (pytest-xdist, ``--dist loadfile``): every test file runs whole on one
worker, so a module's expensive fixture (an executed notebook, the built site) is made once.

    pytest -m "not slow"            the fast part (``python3.11 tasks.py test --fast``)
    pytest --chapter 03-vit         one chapter's tests (``python3.11 tasks.py test --chapter 03-vit``)
    pytest --nbval-lax solutions/   every solution notebook in a Jupyter kernel (nbval): no cell may fail

Under nbval the budget switch applies as in a notebook (``VITCOURSE_BUDGET``, default ``tiny`` here;
``VITCOURSE_MAX_STEPS``). When ``VITCOURSE_MAX_STEPS`` caps training, a graded cell that checks what
training reached may fail, and is reported as an expected failure (xfail); every other cell must pass.

A chapter's tests carry the marker ``chapter(ID)``, added here from the registry (course.toml): every
test in a file of the chapter (``tests/chapters/test_NN_name.py``, ``tests/library/test_MODULE.py``
and ``test_convert_MODULE.py``, for its reference module), every test parametrised with the chapter
(its ``Chapter``, its id, or a path with the id as one of its parts, e.g. ``book/03-vit``), and every
test that declares it: ``@pytest.mark.chapter("05-dino")`` (several ids allowed) on a test or as a
module's ``pytestmark``. An id that is not in the registry is an error.
"""

import os
import pathlib

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("VITCOURSE_BUDGET", "tiny")
# Two workers share two cores: one thread each, here and in every kernel they start
# (nbgrader, the book build). Oversubscribed threads made runs 10-50x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


def pytest_configure(config):
    """The tests check this tree: stop at once, in one sentence, when the library comes from another."""
    from authoring import registry

    foreign = registry.foreign_library()
    if foreign:
        pytest.exit(foreign, returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_addoption(parser):
    parser.addoption("--chapter", action="append", default=[], metavar="NN-name",
                     help="run only the tests of this chapter (repeatable)")


def _chapters_named(value, ids: set[str]) -> set[str]:
    """The chapter ids a test parameter names: a ``Chapter``, an id, or a path one of whose parts is an id."""
    from authoring import registry

    if isinstance(value, registry.Chapter):
        return {value.id}
    if isinstance(value, (str, os.PathLike)) and "\n" not in str(value):
        path = pathlib.PurePath(value)
        return ids & {*path.parts, path.stem}
    return set()


def _chapters_of(item, by_file: dict[pathlib.Path, str], ids: set[str]) -> set[str]:
    found = {chapter_id for mark in item.iter_markers("chapter") for chapter_id in mark.args}
    unknown = found - ids
    if unknown:
        raise pytest.UsageError(f"{item.nodeid}: chapter marker {sorted(unknown)} names no chapter of course.toml "
                                f"(the course has {', '.join(sorted(ids))})")
    if item.path in by_file:
        found.add(by_file[item.path])
    callspec = getattr(item, "callspec", None)
    for value in callspec.params.values() if callspec else ():
        found |= _chapters_named(value, ids)
    return found


def pytest_collection_modifyitems(config, items):
    from authoring import registry

    by_file = {config.rootpath / path: c.id for c in registry.chapters() for path in (c.tests, *c.library_tests)}
    ids = {c.id for c in registry.chapters()}
    for item in items:
        if item.nodeid.startswith("tests/chapters/"):  # each file executes a solution notebook
            item.add_marker(pytest.mark.slow)
        for chapter_id in sorted(_chapters_of(item, by_file, ids)):
            item.add_marker(pytest.mark.chapter(chapter_id))
    _graded_cells_may_fail_under_a_step_cap(items)
    wanted = set(config.getoption("--chapter"))
    if not wanted:
        return
    if wanted - ids:
        raise pytest.UsageError(f"--chapter {', '.join(sorted(wanted - ids))}: the course has {', '.join(sorted(ids))}")
    keep = [i for i in items if wanted & {a for m in i.iter_markers("chapter") for a in m.args}]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


def _graded_cells_may_fail_under_a_step_cap(items):
    """nbval's cell items (they carry the notebook ``cell``): under ``VITCOURSE_MAX_STEPS`` a graded test
    cell becomes a non-strict xfail."""
    from vitcourse import env

    if env.max_steps() is None:
        return
    from autograder import cells

    reason = f"VITCOURSE_MAX_STEPS={env.max_steps()} cuts short the training this graded cell checks"
    for item in items:
        if getattr(item, "cell", None) is not None and cells.kind(item.cell) == "test":
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))


def pytest_terminal_summary(terminalreporter):
    """Say which tests could not run for a missing Debian package (tests/system_packages.py)."""
    from system_packages import summarise_missing

    summarise_missing(terminalreporter)

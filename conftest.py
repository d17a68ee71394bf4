"""Suite-wide settings.

The suite runs on 2 workers (pytest-xdist, ``--dist loadfile``): every test file runs whole on one
worker, so a module's expensive fixture (an executed notebook, the built site) is made once.

    pytest -m "not slow"            the fast part (``python3.11 tasks.py test --fast``)
    pytest --chapter 03-vit         one chapter's tests (``python3.11 tasks.py test --chapter 03-vit``)
"""

import os
import re

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("VITCOURSE_BUDGET", "tiny")
# Two workers share two cores: one thread each, here and in every kernel they start
# (nbgrader, the book build). Oversubscribed threads made runs 10-50x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

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


def _chapter_patterns(chapter_ids):
    from authoring import registry

    patterns = []
    for chapter_id in chapter_ids:
        c = registry.chapter(chapter_id)  # KeyError names the known ids
        patterns += [rf"(^|[^0-9a-z]){re.escape(c.id)}([^a-z]|$)", rf"tests/chapters/test_{c.test_name}\.py",
                     rf"tests/library/test_(convert_)?{c.module_name}\.py"]
    return re.compile("|".join(patterns))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith("tests/chapters/"):  # each file executes a solution notebook
            item.add_marker(pytest.mark.slow)
    chapter_ids = config.getoption("--chapter")
    if not chapter_ids:
        return
    wanted = _chapter_patterns(chapter_ids)
    keep = [i for i in items if wanted.search(i.nodeid)]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep

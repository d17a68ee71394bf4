"""Suite-wide settings.

The suite runs on 2 workers (pytest-xdist, --dist loadgroup). Every test module is one group, so a
module's expensive fixture (an executed notebook, a built site) is made once; nbval's cells of one
notebook stay together in one kernel. A test can join another group with
``@pytest.mark.xdist_group("name")`` (e.g. the site build and the browser test share one).
"""

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("VITCOURSE_BUDGET", "tiny")
# Two workers share two cores: one thread each, here and in every kernel they start
# (nbval, nbgrader, the book build). Oversubscribed threads made runs 10-50x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(m.name == "xdist_group" for m in item.iter_markers()):
            item.add_marker(pytest.mark.xdist_group(str(item.path)))

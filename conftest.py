"""Suite-wide settings.

The suite runs on 2 workers (pytest-xdist, ``--dist loadfile``): every test file, and every
notebook nbval executes, runs whole on one worker, so a module's expensive fixture (an executed
notebook, the built site) is made once and nbval's cells share one kernel.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("VITCOURSE_BUDGET", "tiny")
# Two workers share two cores: one thread each, here and in every kernel they start
# (nbval, nbgrader, the book build). Oversubscribed threads made runs 10-50x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

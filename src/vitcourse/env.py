"""Where a notebook runs: device, run budget and seeds.

Every chapter's set-up cell calls ``device()`` and ``budget()``:

- ``"tiny"``: on a CPU, under nbgrader (``NBGRADER_EXECUTION`` is set) or in CI (``CI`` is set).
  Experiments shrink to seconds.
- ``"full"``: on a GPU. Heavy experiments run only here.

``VITCOURSE_BUDGET=tiny|full`` overrides the choice.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

BUDGETS = ("tiny", "full")

# What a student's answers may import besides Python's standard library. The package depends on each of
# them, so wherever the course is installed (Colab, a laptop, the grader, which runs in this package's
# environment) they import; every chapter's introduction says so in ``allowed_imports_sentence()``.
ALLOWED_IMPORTS = ("torch", "torchvision", "numpy", "einops")


def allowed_imports_sentence() -> str:
    """The sentence of every chapter's introduction that tells students what they may import."""
    names = [f"`{name}`" for name in ALLOWED_IMPORTS]
    listed = ", ".join(names[:-1]) + " and " + names[-1]
    return (f"**Imports:** your answers may use Python's standard library, {listed}, besides what the "
            "notebook imports for you; these are installed wherever the notebook is graded, other packages "
            "may not be.")


def device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def budget() -> str:
    """The run budget of this session: ``"tiny"`` or ``"full"`` (see the module docstring)."""
    forced = os.environ.get("VITCOURSE_BUDGET", "").strip().lower()
    if forced:
        if forced not in BUDGETS:
            raise ValueError(f"VITCOURSE_BUDGET={forced!r}: use one of {BUDGETS}.")
        return forced
    if os.environ.get("NBGRADER_EXECUTION") or os.environ.get("CI"):
        return "tiny"
    return "full" if torch.cuda.is_available() else "tiny"


def grading_seed() -> int:
    """Seed of the hidden tests' random inputs (``VITCOURSE_SEED``, default 0).

    The course's own test suite runs every graded cell with several seeds, so no test can pass
    by accident on one lucky draw.
    """
    return int(os.environ.get("VITCOURSE_SEED", "0"))


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def describe() -> str:
    """One line for the set-up cell: torch version, device and budget."""
    return f"torch {torch.__version__} | device {device()} | budget {budget()}"

"""Where a notebook runs: device, run budget and seeds.

Every chapter's set-up cell calls ``device()`` and ``budget()``:

- ``"tiny"``: on a CPU, under nbgrader (``NBGRADER_EXECUTION`` is set) or in CI (``CI`` is set).
  Experiments shrink to seconds.
- ``"full"``: on a GPU. Heavy experiments run only here.

``VITCOURSE_OFFLINE=1`` makes ``online()`` answer False at once (the test suite sets it).

``VITCOURSE_BUDGET=tiny|full`` overrides the choice. ``VITCOURSE_MAX_STEPS=N`` caps every training
loop of the library and the notebooks at N steps (``steps``): the course's smoke test runs the `full`
budget's code that way on a CPU.

The set-up cell also calls ``check_version`` with the release its notebook came from, and
``set_threads`` (one CPU thread in the tiny budget).
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


def set_threads() -> int:
    """On a CPU in the ``tiny`` budget, let torch use one thread; return the number of threads it uses.

    The course's tiny models multiply matrices a few dozen rows wide: split over several threads, each
    piece is too small to pay for the threads' coordination, and on a machine that is busy with anything
    else the threads wait for each other. One thread runs the tiny budget's notebooks faster, and leaves
    the other cores to the rest of the machine (a grader running several notebooks, a browser). On a GPU,
    or in the ``full`` budget, torch keeps its own choice.
    """
    if device().type == "cpu" and budget() == "tiny":
        torch.set_num_threads(1)
    return torch.get_num_threads()


def online(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether ``host`` answers on port 443 within ``timeout`` seconds (False under ``VITCOURSE_OFFLINE=1``).

    Cells that download weights ask first, so that a machine without internet prints one line instead of
    waiting through a library's retries.
    """
    import socket

    if os.environ.get("VITCOURSE_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def max_steps() -> int | None:
    """The cap of ``VITCOURSE_MAX_STEPS`` on every training loop, or None (no cap)."""
    value = os.environ.get("VITCOURSE_MAX_STEPS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"VITCOURSE_MAX_STEPS={value!r}: use a positive whole number of steps, or unset it.")
    return int(value)


def steps(n: int) -> int:
    """How many steps a loop meant to run ``n`` steps runs: ``n``, or the cap of ``max_steps()``."""
    cap = max_steps()
    return n if cap is None else min(n, cap)


def check_version(expected: str) -> bool:
    """True when the installed ``vitcourse`` is release ``expected``; otherwise says so in one line."""
    from vitcourse import __version__, version

    if __version__ == expected:
        return True
    install = version.install_url(expected)
    print(f"This notebook comes with vitcourse {expected} but {__version__} is installed: on Colab restart the "
          f"session (Runtime > Restart session) and run this cell again, elsewhere run "
          f'pip install "{install}" (or use the notebooks of release {__version__}).')
    return False


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
    """One line for the set-up cell: torch version, device, budget and CPU threads."""
    threads = torch.get_num_threads()
    return (f"torch {torch.__version__} | device {device()} | budget {budget()} | "
            f"{threads} CPU thread{'s' if threads > 1 else ''}")

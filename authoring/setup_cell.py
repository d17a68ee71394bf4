"""The part of every chapter's source that the course registry writes: the notebook's rules (the link to
the reading page, how checks and grading work, what may be imported, how long it takes, its points) and the
head of the set-up cell (install pinned to the release, version check, clear failure, CPU threads).

``python3.11 tasks.py sync`` (through ``authoring.derived``) stamps each ``solutions/NN-name/NN-name.py``
with the registry's repository and version; the release copies the cells to ``notebooks/``. A source
whose stamp is stale makes ``python -m authoring sync --check`` (and tests/test_layout.py) fail.

In the text source jupytext comments out the ``%pip`` magic, so the ``if`` block also holds a
``print``: the source stays valid Python for ruff.
"""

from __future__ import annotations

import json
import math
import re
import textwrap

from authoring import registry
from authoring.registry import ROOT, Chapter, Course
from vitcourse import env

READING_MARK = "# This notebook is the exercise of "
CHECK_CALL = "env.check_version("
THREADS_CALL = "env.set_threads()"
TIMES = ROOT / "benchmarks" / "results" / "notebook_times.json"

READING = """# %% [markdown]
{mark}[Chapter {number} — {title}]({url})
# in the course's book: read the chapter first.
#
# **How it works.** Write your code where a cell says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` under it), then run the check cell right below: it tests your code at
# once, and when it fails its message names the likely mistake and how to fix it. A check that builds on
# an earlier exercise checks that one first. Answer the written questions in the cells that say
# `YOUR ANSWER HERE`: a person reads and grades them.
#
# **When the notebook is graded,** hidden checks run your code again with other sizes (odd and
# non-square ones too), other random seeds, `float64` inputs, and on PyTorch's `meta` device, which stands
# in for a GPU: a tensor created without `device=...` lands on the CPU and cannot be combined with inputs
# that live elsewhere. Code that fits only the visible examples loses those points.
#
# {imports}
#
# **Time and points.** Top to bottom, the notebook runs in {time} on a two-core CPU
# (the set-up cell below gives PyTorch one CPU thread, the fastest choice for models this small).
# {points}

"""

HEAD = """# %%
# Set-up. On Colab: install the course library, release {version} (Colab's own PyTorch is kept).
# Everywhere: check the release, then pick the device and the run budget.
import sys
if "google.colab" in sys.modules:
    print("Installing the course library vitcourse {version} ...")
    %pip install -q "{install_url}"
try:
    from vitcourse import env
except ImportError:
    raise SystemExit("The course library is not installed: on Colab check the internet connection and run this "
                     "cell again; elsewhere install it with pip install "
                     '"{install_url}".') from None
{check}"{version}")
{threads}
"""


def reading_cell(chapter: Chapter, info: Course, text: str = "") -> str:
    """The markdown cell above the set-up cell: the link to the reading page (an absolute URL: it works in
    Colab) and the rules of every notebook, with this one's run time and points (``text``: its source)."""
    return READING.format(mark=READING_MARK, number=chapter.number, title=chapter.title,
                          url=info.site_url + chapter.page_html,
                          imports="\n# ".join(textwrap.wrap(env.allowed_imports_sentence(), 104)),
                          time=run_time(chapter.id), points=points_sentence(text))


def run_time(chapter_id: str) -> str:
    """How long the solution runs in the tiny budget, from the benchmark's result file, rounded up."""
    seconds = json.loads(TIMES.read_text())["seconds"].get(chapter_id) if TIMES.exists() else None
    if seconds is None:
        return "under three minutes"
    if seconds < 55:
        return f"about {max(10, 10 * math.ceil(seconds / 10))} seconds"
    return f"about {math.ceil(seconds / 60)} minute{'s' if seconds > 60 else ''}"


_HEADER = re.compile(r"^# %%( \[markdown\])? .*?nbgrader=(\{.*?\})\s*$", re.M)


def points_sentence(text: str) -> str:
    """"20 points: 16 for code, 4 for written answers." from the graded cells' metadata in ``text``."""
    code = written = 0.0
    for match in _HEADER.finditer(text):
        meta = json.loads(match.group(2))
        if meta.get("grade"):
            if match.group(1) and meta.get("solution"):
                written += float(meta.get("points") or 0)
            elif not meta.get("solution"):
                code += float(meta.get("points") or 0)
    fmt = lambda x: f"{x:g}"
    if not written:
        return f"{fmt(code)} points, all for code."
    return f"{fmt(code + written)} points: {fmt(code)} for code, {fmt(written)} for written answers."


def head(info: Course) -> str:
    """The first lines of the set-up cell, as jupytext writes them (the magic commented out)."""
    text = HEAD.format(version=info.version, install_url=info.install_url, check=CHECK_CALL, threads=THREADS_CALL)
    return text.replace("\n    %pip ", "\n    # %pip ")


def stamp(text: str, chapter: Chapter, info: Course | None = None) -> str:
    """``text`` (a chapter's source) with its reading link and set-up head written from the registry.

    The set-up cell is the first code cell; its head ends with the ``env.check_version(...)`` line,
    and the chapter's own imports follow it. The reading link is the markdown cell just above it
    (added when missing).
    """
    info = info or registry.info()
    lines = text.splitlines(keepends=True)
    cells = [k for k, line in enumerate(lines) if line.startswith("# %%")]
    setup = next((k for k in cells if lines[k].rstrip("\n") == "# %%"), None)
    if setup is None:
        raise ValueError(f"{chapter.source}: no code cell; the set-up cell comes after the title")
    following = [k for k in cells if k > setup] + [len(lines)]
    end = next((k for k in range(setup, following[0]) if lines[k].startswith(CHECK_CALL)), None)
    if end is None:
        raise ValueError(f"{chapter.source}: the set-up cell (its first code cell) must start with the course's "
                         f"set-up lines, ending with `{CHECK_CALL}...)`; copy them from chapter 1")
    if end + 1 < len(lines) and lines[end + 1].startswith(THREADS_CALL):
        end += 1
    previous = [k for k in cells if k < setup]
    start = setup
    if previous and lines[previous[-1]].startswith("# %% [markdown]") and \
            previous[-1] + 1 < len(lines) and lines[previous[-1] + 1].startswith(READING_MARK):
        start = previous[-1]
    before = "".join(lines[:start])
    if before and not before.endswith("\n\n"):
        before = before.rstrip("\n") + "\n\n"
    return before + reading_cell(chapter, info, text) + head(info) + "".join(lines[end + 1:])

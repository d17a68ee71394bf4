"""The part of every chapter's source that the course registry writes: the link to the reading page
and the head of the set-up cell (install pinned to the release, version check, clear failure).

``python3.11 tasks.py sync`` (through ``authoring.derived``) stamps each ``solutions/NN-name/NN-name.py``
with the registry's repository and version; the release copies the cells to ``notebooks/``. A source
whose stamp is stale makes ``python -m authoring sync --check`` (and tests/test_layout.py) fail.

In the text source jupytext comments out the ``%pip`` magic, so the ``if`` block also holds a
``print``: the source stays valid Python for ruff.
"""

from __future__ import annotations

from authoring import registry
from authoring.registry import Chapter, Course

READING_MARK = "# This notebook is the exercise of "
CHECK_CALL = "env.check_version("

READING = """# %% [markdown]
{mark}[Chapter {number} — {title}]({url})
# in the course's book: read the chapter first. The next cell sets the notebook up (on Colab it installs
# the course library).

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
"""


def reading_cell(chapter: Chapter, info: Course) -> str:
    """The markdown cell that links the exercise to its reading page (an absolute URL: it works in Colab)."""
    return READING.format(mark=READING_MARK, number=chapter.number, title=chapter.title,
                          url=info.site_url + chapter.page_html)


def head(info: Course) -> str:
    """The first lines of the set-up cell, as jupytext writes them (the magic commented out)."""
    text = HEAD.format(version=info.version, install_url=info.install_url, check=CHECK_CALL)
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
    previous = [k for k in cells if k < setup]
    start = setup
    if previous and lines[previous[-1]].startswith("# %% [markdown]") and \
            previous[-1] + 1 < len(lines) and lines[previous[-1] + 1].startswith(READING_MARK):
        start = previous[-1]
    before = "".join(lines[:start])
    if before and not before.endswith("\n\n"):
        before = before.rstrip("\n") + "\n\n"
    return before + reading_cell(chapter, info) + head(info) + "".join(lines[end + 1:])

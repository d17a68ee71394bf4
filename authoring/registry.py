"""The course registry: its identity and its chapters, read from ``course.toml`` at the root of this tree.

    >>> from authoring import registry
    >>> [c.id for c in registry.chapters()][:2]
    ['01-patches', '02-position']
    >>> registry.chapter("03-vit").module
    'vitcourse.models.vit'

Every place that lists chapters (table of contents, release, tests, the intro page) derives from
``chapters()`` or is checked against it. The registry is always the one of the tree this package sits in
(``ROOT``): the authoring package is never installed, so a checkout's tools and tests read their own.
Where each part of a chapter lives (``Chapter.source``, ``Chapter.page``, ...) is the layout, checked by
``authoring.layout``.
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib
import re
import sys
from dataclasses import dataclass

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from vitcourse import version

ROOT = pathlib.Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "course.toml"
ID_PATTERN = re.compile(r"^(\d\d)-([a-z][a-z0-9]*(?:-[a-z0-9]+)*)$")
GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)/([A-Za-z0-9._-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class Chapter:
    """One chapter: one id used everywhere, e.g. ``01-patches``."""

    id: str
    title: str
    module_name: str  # the reference module under vitcourse.models
    points: int = 20
    summary: str = ""  # what the chapter covers, one sentence for the intro's list of chapters

    @property
    def number(self) -> int:
        return int(self.id[:2])

    @property
    def module(self) -> str:
        return f"vitcourse.models.{self.module_name}"

    @property
    def test_name(self) -> str:
        """``01-patches`` -> ``01_patches`` (the stem of test and benchmark files)."""
        return self.id.replace("-", "_")

    @property
    def source(self) -> str:
        """The nbgrader source as text (jupytext percent format); the .ipynb beside it is generated."""
        return f"solutions/{self.id}/{self.id}.py"

    @property
    def source_notebook(self) -> str:
        return f"solutions/{self.id}/{self.id}.ipynb"

    @property
    def student_notebook(self) -> str:
        return f"notebooks/{self.id}/{self.id}.ipynb"

    @property
    def page(self) -> str:
        return f"book/{self.id}.md"

    @property
    def tests(self) -> str:
        """The chapter's own tests; the checks every chapter runs are added by tests/chapters/conftest.py."""
        return f"tests/chapters/test_{self.test_name}.py"

    @property
    def bugs(self) -> str:
        """The plausible student bugs (``BUGS``), each of which must lose points."""
        return f"tests/chapters/bugs_{self.test_name}.py"

    @property
    def alternatives(self) -> str:
        """Different correct answers (``ALTERNATIVES``), each of which must keep full marks."""
        return f"tests/chapters/alternatives_{self.test_name}.py"

    @property
    def library_tests(self) -> tuple[str, ...]:
        """Where the tests of the reference module may live (either, both or neither exists)."""
        return f"tests/library/test_{self.module_name}.py", f"tests/library/test_convert_{self.module_name}.py"

    @property
    def module_file(self) -> str:
        return f"src/vitcourse/models/{self.module_name}.py"

    @property
    def page_html(self) -> str:
        """The reading page in the built site, relative to its root."""
        return f"book/{self.id}.html"


@dataclass(frozen=True)
class Course:
    title: str
    repository: str
    branch: str
    version: str
    site: str = ""  # where the book is published; empty: the repository's GitHub Pages

    @property
    def github(self) -> tuple[str, str] | None:
        """(owner, name) of a github.com repository, else None."""
        found = GITHUB.match(self.repository)
        return (found[1], found[2]) if found else None

    @property
    def site_url(self) -> str:
        """The published book, ending with ``/``: ``site``, or GitHub Pages for a github.com repository."""
        if self.site:
            return self.site.rstrip("/") + "/"
        if self.github is None:
            raise ValueError(f"{REGISTRY.name}: the repository {self.repository} is not on github.com, so the "
                             "book's address cannot be derived; set `site = \"https://...\"` under [course]")
        owner, name = self.github
        if name.lower() == f"{owner.lower()}.github.io":  # a user or organisation site is served at the root
            return f"https://{owner.lower()}.github.io/"
        return f"https://{owner.lower()}.github.io/{name}/"

    @property
    def tag(self) -> str:
        """The git tag of this release; student notebooks install the library from it."""
        return version.tag(self.version)

    @property
    def install_url(self) -> str:
        """What a student notebook's set-up cell gives to pip (pinned to this release)."""
        return version.install_url(self.version, self.repository)


@functools.cache
def _registry() -> dict:
    return tomllib.loads(REGISTRY.read_text(encoding="utf-8"))


def reload() -> None:
    """Read ``course.toml`` again on the next call (after a step rewrote it)."""
    _registry.cache_clear()


def info() -> Course:
    """The course's identity: title, repository URL, branch and version."""
    c = _registry()["course"]
    return Course(c["title"], c["repository"], c["branch"], c["version"], c.get("site", ""))


def book() -> dict:
    """The book's fixed pages: ``root`` (the intro) and ``guides`` (after the chapters)."""
    return dict(_registry()["book"])


def chapters() -> tuple[Chapter, ...]:
    """Every chapter, in order."""
    found = tuple(Chapter(c["id"], c["title"], c["module"], c.get("points", 20), c.get("summary", ""))
                  for c in _registry()["chapters"])
    for c in found:
        if not ID_PATTERN.match(c.id):
            raise ValueError(f"chapter id {c.id!r} in {REGISTRY.name}: use NN-name, e.g. '09-vlm'")
    return found


def chapter(chapter_id: str) -> Chapter:
    """The chapter with this id; a clear error names the known ids."""
    for c in chapters():
        if c.id == chapter_id:
            return c
    raise KeyError(f"no chapter {chapter_id!r}; the course has {', '.join(c.id for c in chapters())}")


def foreign_library() -> str | None:
    """None when ``vitcourse`` is imported from this tree's ``src/``; otherwise one sentence saying that the
    environment belongs to another tree (the tools and tests of this tree would check another library)."""
    spec = importlib.util.find_spec("vitcourse")
    here = ROOT / "src" / "vitcourse"
    if spec is None or spec.origin is None:
        return f"vitcourse is not installed in this Python ({sys.executable}): run `python3.11 tasks.py env` in {ROOT}."
    found = pathlib.Path(spec.origin).resolve().parent
    if found == here.resolve():
        return None
    return (f"This Python ({sys.executable}) imports vitcourse from {found}, not from this tree ({here}): the environment "
            f"belongs to another checkout; use this tree's own (`python3.11 tasks.py env` in {ROOT} creates it).")

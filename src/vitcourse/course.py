"""The course registry: its identity and its chapters, read from ``course.toml`` next to this file.

    >>> from vitcourse import course
    >>> [c.id for c in course.chapters()][:2]
    ['01-patches', '02-position']
    >>> course.chapter("03-vit").module
    'vitcourse.models.vit'

Every place that lists chapters (table of contents, release, grader, tests, the intro page) derives
from ``chapters()`` or is checked against it.
"""

from __future__ import annotations

import functools
import pathlib
import re
from dataclasses import dataclass

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REGISTRY = pathlib.Path(__file__).with_name("course.toml")
ID_PATTERN = re.compile(r"^(\d\d)-([a-z][a-z0-9]*(?:-[a-z0-9]+)*)$")
GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)/([A-Za-z0-9._-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class Chapter:
    """One chapter: one id used everywhere, e.g. ``01-patches``."""

    id: str
    title: str
    module_name: str  # the reference module under vitcourse.models
    points: int = 20

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
        return f"tests/chapters/test_{self.test_name}.py"

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
        return f"v{self.version}"

    @property
    def install_url(self) -> str:
        """What a student notebook's set-up cell gives to pip (pinned to this release)."""
        return f"git+{self.repository}@{self.tag}"


@functools.cache
def _registry() -> dict:
    return tomllib.loads(REGISTRY.read_text(encoding="utf-8"))


def info() -> Course:
    """The course's identity: title, repository URL, branch and version."""
    c = _registry()["course"]
    return Course(c["title"], c["repository"], c["branch"], c["version"], c.get("site", ""))


def book() -> dict:
    """The book's fixed pages: ``root`` (the intro) and ``guides`` (after the chapters)."""
    return dict(_registry()["book"])


def chapters() -> tuple[Chapter, ...]:
    """Every chapter, in order."""
    found = tuple(Chapter(c["id"], c["title"], c["module"], c.get("points", 20))
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

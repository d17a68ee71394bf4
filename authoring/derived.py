"""Files derived from the course registry (course.toml), written or checked.

``expected()`` holds every one of them: the table of contents, _config.yml's repository, the package
version (pyproject.toml and src/vitcourse/version.py, with the repository notebooks install from), the
branch of the publishing workflow, the intro's list of chapters, the README's chapter count and the
stamp of each chapter's source (``authoring.setup_cell``: the link to the reading page and the head of
the set-up cell). ``python3.11 tasks.py sync`` (``authoring.sync``) writes them first, then the
notebooks and the release.
"""

from __future__ import annotations

import pathlib
import re

from authoring import registry, setup_cell
from authoring.registry import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
VERSION_MODULE = ROOT / "src" / "vitcourse" / "version.py"
README = ROOT / "README.md"
# The intro's list of chapters is the block from this comment line to the next blank line.
INTRO_MARK = "% The list of chapters is written from course.toml by `python3.11 tasks.py sync`.\n"
NUMBERS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
          "seventeen eighteen nineteen twenty".split()


def toc() -> str:
    """The table of contents: each chapter's reading page with its exercise notebook under it."""
    book = registry.book()
    lines = [
        f"# Generated from {registry.REGISTRY.relative_to(ROOT)} by `python3.11 tasks.py sync`: edit that file.",
        "format: jb-book",
        f"root: {book['root']}",
        "parts:",
        "  - caption: Chapters",
        "    chapters:",
    ]
    for c in registry.chapters():
        lines += [f"      - file: {c.page.removesuffix('.md')}",
                  "        sections:",
                  f"          - file: {c.student_notebook.removesuffix('.ipynb')}"]
    lines += ["  - caption: Running the course", "    chapters:"]
    lines += [f"      - file: {page}" for page in book["guides"]]
    return "\n".join(lines) + "\n"


def _replace(text: str, pattern: str, value: str, where: str) -> str:
    new, count = re.subn(pattern, lambda m: m.group(1) + value + m.group(3), text, count=1, flags=re.M)
    if count != 1:
        raise ValueError(f"{where}: no line matches {pattern!r}; restore it from git")
    return new


def config(text: str) -> str:
    """_config.yml with the registry's repository URL and branch (Jupyter Book's launch buttons)."""
    info = registry.info()
    text = _replace(text, r"^(  url: )(.*)()$", info.repository, "_config.yml repository.url")
    return _replace(text, r"^(  branch: )(.*)()$", info.branch, "_config.yml repository.branch")


def pyproject(text: str) -> str:
    """pyproject.toml with the registry's version (the package is the release)."""
    return _replace(text, r'^(version = ")([^"]*)(")$', registry.info().version, "pyproject.toml version")


def version_module(text: str) -> str:
    """src/vitcourse/version.py with the registry's version and repository: what the installed library
    knows of its release (``vitcourse.__version__``, the install line ``env.check_version`` prints)."""
    info = registry.info()
    text = _replace(text, r'^(VERSION = ")([^"]*)(")$', info.version, "src/vitcourse/version.py VERSION")
    return _replace(text, r'^(REPOSITORY = ")([^"]*)(")$', info.repository, "src/vitcourse/version.py REPOSITORY")


def workflow(text: str) -> str:
    """The publishing workflow, run on pushes to the registry's branch."""
    return _replace(text, r"^(    branches: \[)([^\]]*)(\])$", registry.info().branch, f"{WORKFLOW.name} branches")


def intro(text: str) -> str:
    """The intro page with its numbered list of chapters (title and summary of each) written from the registry."""
    root = f"{registry.book()['root']}.md"
    if INTRO_MARK not in text:
        raise ValueError(f"{root}: the list of chapters starts with the line {INTRO_MARK.strip()!r}; restore it from git")
    start = text.index(INTRO_MARK) + len(INTRO_MARK)
    end = text.find("\n\n", start)
    end = len(text) if end < 0 else end + 1
    items = [f"{c.number}. **{c.title}** — {c.summary}\n" for c in registry.chapters()]  # one line each
    return text[:start] + "".join(items) + text[end:]


def readme(text: str) -> str:
    """The README's first sentence, with the number of chapters in words."""
    n = len(registry.chapters())
    return _replace(text, r"^(A course in )(\w+)( chapters)", NUMBERS[n] if n < len(NUMBERS) else str(n),
                    "README.md's first line ('A course in N chapters')")


def expected() -> dict[pathlib.Path, str]:
    """{file: the text it must hold} for every file derived from the registry."""
    read = lambda path: path.read_text(encoding="utf-8")
    intro_page = ROOT / f"{registry.book()['root']}.md"
    files = {
        ROOT / "_toc.yml": toc(),
        ROOT / "_config.yml": config(read(ROOT / "_config.yml")),
        ROOT / "pyproject.toml": pyproject(read(ROOT / "pyproject.toml")),
        VERSION_MODULE: version_module(read(VERSION_MODULE)),
        WORKFLOW: workflow(read(WORKFLOW)),
        intro_page: intro(read(intro_page)),
        README: readme(read(README)),
    }
    for chapter in registry.chapters():
        source = ROOT / chapter.source
        if source.is_file():
            files[source] = setup_cell.stamp(read(source), chapter)
    return files


def update(path: pathlib.Path, text: str, check: bool = False) -> bool:
    """True when ``path`` does not hold ``text``; then writes it, unless ``check``."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    if not check:
        path.write_text(text, encoding="utf-8")
    return True


def sync(check: bool = False) -> list[str]:
    """Write the derived files (or only list the stale ones, with ``check``)."""
    return [str(path.relative_to(ROOT)) for path, text in expected().items() if update(path, text, check)]

"""Files derived from the course registry (src/vitcourse/course.toml), written or checked.

    python -m tools.derived            # write _toc.yml, _config.yml's repository, pyproject's version,
                                       # the publishing workflow's branch, each chapter's set-up stamp
    python -m tools.derived --check    # exit 1 when one of them is stale

The stamp (``tools.setup_cell``) is the link to the reading page and the head of the set-up cell in
every chapter's text source: the install pinned to the release, the version check. ``python3.11
tasks.py sync`` runs this first, then the notebook sync and the release.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

from tools import setup_cell
from vitcourse import course

ROOT = pathlib.Path(__file__).resolve().parent.parent


def toc() -> str:
    """The table of contents: each chapter's reading page with its exercise notebook under it."""
    book = course.book()
    lines = [
        f"# Generated from {course.REGISTRY.relative_to(ROOT)} by `python3.11 tasks.py sync`: edit that file.",
        "format: jb-book",
        f"root: {book['root']}",
        "parts:",
        "  - caption: Chapters",
        "    chapters:",
    ]
    for c in course.chapters():
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
    info = course.info()
    text = _replace(text, r"^(  url: )(.*)()$", info.repository, "_config.yml repository.url")
    return _replace(text, r"^(  branch: )(.*)()$", info.branch, "_config.yml repository.branch")


def pyproject(text: str) -> str:
    """pyproject.toml with the registry's version (the package is the release)."""
    return _replace(text, r'^(version = ")([^"]*)(")$', course.info().version, "pyproject.toml version")


WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def workflow(text: str) -> str:
    """The publishing workflow, run on pushes to the registry's branch."""
    return _replace(text, r"^(    branches: \[)([^\]]*)(\])$", course.info().branch, f"{WORKFLOW.name} branches")


def expected() -> dict[pathlib.Path, str]:
    read = lambda path: path.read_text(encoding="utf-8")
    files = {
        ROOT / "_toc.yml": toc(),
        ROOT / "_config.yml": config(read(ROOT / "_config.yml")),
        ROOT / "pyproject.toml": pyproject(read(ROOT / "pyproject.toml")),
        WORKFLOW: workflow(read(WORKFLOW)),
    }
    for chapter in course.chapters():
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when stale")
    args = parser.parse_args(argv)
    stale = sync(args.check)
    verb = "stale (run `python3.11 tasks.py sync`)" if args.check else "written"
    print("\n".join(f"{s}: {verb}" for s in stale) or "derived files are up to date")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())

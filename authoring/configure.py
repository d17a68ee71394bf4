"""Run the course under your own name: set the repository (and branch, and the site) in one step.

    python -m authoring configure --repository https://github.com/OWNER/REPO [--branch main] [--site URL]
    (or: python3.11 tasks.py configure --repository ...)

Rewrites the [course] table of course.toml, then regenerates everything derived from it (``authoring.sync``):
the set-up cell of every chapter (install line pinned to the release, link to the reading page), the
solution and student notebooks, _config.yml's repository (the book's Colab buttons) and the branch of
the publishing workflow. Then commit, tag the release (``git tag vVERSION && git push --tags``: the
notebooks install the library from that tag) and push.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from authoring import registry

URL = re.compile(r"^https?://[^\s\"'@]+$")
BRANCH = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._/-]*$")


def rewrite(text: str, values: dict[str, str]) -> str:
    """The registry's text with ``values`` set in its [course] table (other lines kept as they are)."""
    start = text.index("[course]")
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    table = text[start:end]
    for key, value in values.items():
        line = f"{key} = {json.dumps(value)}"
        table, count = re.subn(rf"^{key} = .*$", line, table, count=1, flags=re.M)
        if not count:
            table = table.rstrip("\n") + f"\n{line}\n" + ("\n" if end < len(text) else "")
    return text[:start] + table + text[end:]


def check(repository: str, branch: str | None, site: str | None) -> list[str]:
    """Problems with the requested settings, each naming the fix."""
    problems = []
    if not URL.match(repository):
        problems.append(f"--repository {repository!r}: give the repository's web address, "
                        "e.g. https://github.com/OWNER/REPO")
    elif not registry.GITHUB.match(repository) and not site:
        problems.append(f"--repository {repository}: Colab opens notebooks and GitHub Pages publishes books from "
                        "github.com only; for another host also give --site with the book's address")
    if branch is not None and not BRANCH.match(branch):
        problems.append(f"--branch {branch!r} is not a git branch name")
    if site is not None and site and not URL.match(site):
        problems.append(f"--site {site!r}: give the address of the published book, e.g. https://OWNER.github.io/REPO/")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", required=True, help="e.g. https://github.com/OWNER/REPO")
    parser.add_argument("--branch", help="the branch the book is published from (default: keep)")
    parser.add_argument("--site", help="where the book is published (default: GitHub Pages of the repository)")
    args = parser.parse_args(argv)
    repository = args.repository.rstrip("/").removesuffix(".git")
    problems = check(repository, args.branch, args.site)
    if problems:
        parser.error("; ".join(problems))
    values = {"repository": repository}
    if args.branch:
        values["branch"] = args.branch
    if args.site is not None:
        values["site"] = args.site
    registry.REGISTRY.write_text(rewrite(registry.REGISTRY.read_text(encoding="utf-8"), values), encoding="utf-8")
    registry.reload()
    info = registry.info()
    print(f"{registry.REGISTRY.name}: repository {info.repository}, branch {info.branch}, site {info.site_url}")
    from authoring import sync  # after the checks: a refused setting answers at once

    sync.sync()
    print(f"\nNext: commit, then tag the release the notebooks install from and push it:\n"
          f"    git tag {info.tag} && git push && git push --tags")
    return 0


if __name__ == "__main__":
    sys.exit(main())

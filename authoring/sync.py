"""Regenerate everything derived, in order: registry-derived files, solution notebooks, the release.

    python -m authoring sync              # write (``python3.11 tasks.py sync``)
    python -m authoring sync --check      # change nothing; exit 1 when something is stale
    python -m authoring sync 03-vit       # the release of one chapter only (the rest as above)

1. ``derived``: _toc.yml, _config.yml, versions, the intro's list, the README's count, set-up stamps;
2. ``notebooks``: each ``solutions/ID/ID.ipynb`` from its text source;
3. ``release``: ``notebooks/ID/`` with nbgrader.

``configure`` and ``scaffold`` end with this same step.
"""

from __future__ import annotations

import argparse
import sys

from authoring import derived, notebooks, registry, release


def sync(check: bool = False, chapter_ids: list[str] | None = None) -> list[str]:
    """Bring every derived file up to date and return the ones that were stale; with ``check``, change
    nothing and return what is stale, in words. The release prints what it writes."""
    registry.reload()
    stale = derived.sync(check) + notebooks.sync(check=check)
    if check:
        return [f"{path} is stale" for path in stale] + release.differences(chapter_ids)
    for path in stale:
        print(f"{path}: written", flush=True)
    release.write(chapter_ids)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="release only these chapters (default: all)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when something is stale")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.chapters) - set(release.chapters()))
    if unknown:
        parser.error(f"unknown chapter(s) {unknown}; known: {release.chapters()}")
    done = sync(args.check, args.chapters or None)
    if args.check:
        print("\n".join(done + ["run `python3.11 tasks.py sync`"]) if done else "everything is in sync")
        return 1 if done else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

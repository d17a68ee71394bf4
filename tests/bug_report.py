"""What a student sees of each plausible bug before submitting, chapter by chapter.

    .venv/bin/python tests/bug_report.py                  # every chapter: one summary line each
    .venv/bin/python tests/bug_report.py 03-vit -v        # one chapter, bug by bug, with the messages

For every bug of a chapter's ``BUGS`` table it runs, with the bug in place, the visible checks (the
release's view) of the check right under the bug's exercise and of the cells the bug names, and counts:

- *at its exercise*: the visible check right under the exercise fails;
- *with the declared hint*: ... and its message holds the bug's declared ``hint``;
- *elsewhere*: only a later visible check fails;
- *hidden-only*: no visible check fails (only the grade shows it).
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys

from nbexec import NotebookRun, own_check


def chapter_bugs(chapter_id: str) -> dict:
    module = importlib.import_module(f"test_{chapter_id.replace('-', '_')}")
    return module.BUGS


def report(chapter_id: str, verbose: bool = False) -> dict:
    run = NotebookRun(f"solutions/{chapter_id}/{chapter_id}.ipynb")
    counts = {"bugs": 0, "at_exercise": 0, "with_hint": 0, "elsewhere": 0, "hidden_only": 0, "declared_hidden": 0}
    for name, bug in chapter_bugs(chapter_id).items():
        overrides = bug.overrides(run.namespace)
        own = own_check(run, overrides)
        cells = set(bug.cells) | ({own} if own else set())
        visible = run.rerun_tests(overrides=overrides, only=cells, visible=True)
        counts["bugs"] += 1
        counts["declared_hidden"] += bug.hidden_only is not None
        if own and visible.get(own):
            counts["at_exercise"] += 1
            ok = bug.hint is not None and bug.check == own and bug.hint.lower() in visible[own].lower()
            counts["with_hint"] += ok
            state = "at its exercise" + (" with the declared hint" if ok else "")
        elif any(visible.values()):
            counts["elsewhere"] += 1
            state = "elsewhere: " + ", ".join(k for k, v in visible.items() if v)
        else:
            counts["hidden_only"] += 1
            state = "hidden-only" + (f" (declared: {bug.hidden_only})" if bug.hidden_only else " (not declared)")
        if verbose:
            message = visible.get(own) or next((v for v in visible.values() if v), "")
            print(f"- {name} [{own}]: {state}")
            if message:
                print("    " + message.replace("\n", "\n    "))
    return counts


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the tree's authoring package
    from authoring import registry

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter ids (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per bug, with its message")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "chapters"))
    print("chapter          bugs  at exercise  with declared hint  elsewhere  hidden-only (declared)")
    for chapter in registry.chapters():
        if args.chapters and chapter.id not in args.chapters:
            continue
        c = report(chapter.id, args.verbose)
        print(f"{chapter.id:<16} {c['bugs']:>4}  {c['at_exercise']:>11}  {c['with_hint']:>18}  {c['elsewhere']:>9}  "
              f"{c['hidden_only']:>11} ({c['declared_hidden']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

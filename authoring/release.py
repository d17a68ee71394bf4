"""Regenerate the student notebooks in ``notebooks/`` from the sources in ``solutions/``.

    python -m authoring release            # every chapter (``python3.11 tasks.py release``)
    python -m authoring release 01-patches # one chapter
    python -m authoring release --check    # exit 1 if notebooks/ differs from a fresh release

nbgrader ``generate_assignment`` does the work (solutions replaced by stubs, hidden tests removed,
outputs cleared, cells locked) with the grader's nbgrader settings (``autograder.settings``: the code
stub students see is the one the grader expects). The gradebook it needs in passing lives in a
temporary directory. The notebooks are written in the one stable formatting of ``notebooks.dumps``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

from authoring import notebooks, registry
from authoring.registry import ROOT
from autograder import settings

RELEASES = ROOT / "notebooks"


def chapters() -> list[str]:
    """Assignment ids: the chapters of the course registry."""
    return [c.id for c in registry.chapters()]


def generate(dest: pathlib.Path, assignments: list[str] | None = None) -> None:
    """Run nbgrader generate_assignment for ``assignments`` into ``dest/<id>/``."""
    assignments = assignments or chapters()
    with tempfile.TemporaryDirectory() as tmp:
        # The course settings (code stub, ...) reach nbgrader through a config file in its cwd.
        pathlib.Path(tmp, "nbgrader_config.py").write_text(
            "from autograder import settings\nsettings.apply(get_config())\n"
        )
        for assignment in assignments:
            cmd = [
                sys.executable, "-m", "nbgrader", "generate_assignment", assignment,
                "--force", "--log-level=WARN",
                f"--CourseDirectory.root={ROOT}",
                "--CourseDirectory.source_directory=solutions",
                f"--CourseDirectory.release_directory={dest}",
                f"--CourseDirectory.db_url=sqlite:///{tmp}/gradebook.db",
            ]
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=settings.tool_env())
            if done.returncode:
                raise RuntimeError(
                    f"nbgrader generate_assignment {assignment} failed:\n{done.stdout}\n{done.stderr}"
                )
            _normalise(dest / assignment)


def _normalise(folder: pathlib.Path) -> None:
    """Write released notebooks with the stable formatting of the generated source notebooks."""
    for nb in folder.glob("*.ipynb"):
        nb.write_text(notebooks.dumps(json.loads(nb.read_text(encoding="utf-8"))), encoding="utf-8")


def differences(assignments: list[str] | None = None) -> list[str]:
    """Files under notebooks/ that differ from a fresh release (missing, extra or changed)."""
    assignments = assignments or chapters()
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = pathlib.Path(tmp) / "release"
        generate(fresh, assignments)
        for assignment in assignments:
            new_files = {p.relative_to(fresh) for p in (fresh / assignment).rglob("*") if p.is_file()}
            old_dir = RELEASES / assignment
            old_files = {p.relative_to(RELEASES) for p in old_dir.rglob("*") if p.is_file()} if old_dir.exists() else set()
            for rel in sorted(new_files - old_files):
                problems.append(f"notebooks/{rel} is missing")
            for rel in sorted(old_files - new_files):
                problems.append(f"notebooks/{rel} is not produced by the release")
            for rel in sorted(new_files & old_files):
                if (fresh / rel).read_bytes() != (RELEASES / rel).read_bytes():
                    problems.append(f"notebooks/{rel} differs from its source in solutions/")
    return problems


def write(assignments: list[str] | None = None) -> None:
    """Regenerate ``notebooks/ID/`` of ``assignments`` (default: every chapter)."""
    assignments = assignments or chapters()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = pathlib.Path(tmp) / "release"
        generate(fresh, assignments)
        for assignment in assignments:
            shutil.rmtree(RELEASES / assignment, ignore_errors=True)
            shutil.copytree(fresh / assignment, RELEASES / assignment)
            print(f"released notebooks/{assignment}/", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", help="chapter ids (default: all)")
    parser.add_argument("--check", action="store_true", help="only compare, change nothing")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.assignments) - set(chapters()))
    if unknown:
        parser.error(f"unknown chapter(s) {unknown}; known: {chapters()}")
    if args.check:
        problems = differences(args.assignments or None)
        print("\n".join(problems) if problems else "notebooks/ is in sync with solutions/")
        return 1 if problems else 0
    write(args.assignments or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m autograder``: the instructor's grading tool (see book/instructor-guide.md).

    python -m autograder init ~/grading/fall                  # workspace, SQLite gradebook
    python -m autograder init DIR --db postgresql://user@host/vit   # any SQLAlchemy URL
    cd ~/grading/fall        # (or pass -w DIR to every command)
    python -m autograder collect downloads.zip --roster roster.csv
    python -m autograder grade 01-patches --jobs 2
    python -m autograder feedback 01-patches
    python -m autograder export
    python -m autograder repair 01-patches   # repair and flag only, no grading
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from autograder.workspace import Workspace


def _ws(args) -> Workspace:
    ws = Workspace.load(args.workspace or os.environ.get("AUTOGRADER_WORKSPACE") or os.getcwd())
    changed = False
    if getattr(args, "timeout", None):
        ws.cell_timeout_s, changed = args.timeout, True
    if getattr(args, "memory_mb", None):
        ws.kernel_memory_mb, changed = args.memory_mb, True
    if changed:
        ws.save()
        ws.write_nbgrader_config(ws.root, ws.db_url)
        ws.write_kernelspec()
    return ws


def _check_assignment(ws: Workspace, name: str) -> None:
    if name not in ws.assignments():
        raise SystemExit(f"unknown assignment {name!r}; the course has {ws.assignments()}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--workspace", help="grading workspace (default: $AUTOGRADER_WORKSPACE or .)")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("init", help="create a grading workspace outside the repository")
    q.add_argument("dir")
    q.add_argument("--course", default=None, help="course repository holding solutions/ (default: this one)")
    q.add_argument("--db", default=None, help="gradebook SQLAlchemy URL (default: DIR/gradebook.db)")
    q.add_argument("--timeout", type=int, default=None, help="seconds per cell")
    q.add_argument("--memory-mb", type=int, default=None, help="address-space limit per kernel, MiB")

    q = sub.add_parser("collect", help="collect an LMS zip or a folder of notebooks")
    q.add_argument("source")
    q.add_argument("--roster", required=True, help="CSV with a student_id column (optional name, email)")

    for name, text in [("repair", "repair and flag submissions without grading"),
                       ("flags", "list flagged submissions (repairs first)"),
                       ("feedback", "HTML feedback per student, hidden tests removed")]:
        q = sub.add_parser(name, help=text)
        q.add_argument("assignment")

    q = sub.add_parser("grade", help="repair, flag and autograde an assignment")
    q.add_argument("assignment")
    q.add_argument("--jobs", type=int, default=1, help="students graded in parallel (processes)")
    q.add_argument("--student", action="append", help="only this student (repeatable)")
    q.add_argument("--timeout", type=int, default=None, help="seconds per cell (saved in the workspace)")
    q.add_argument("--memory-mb", type=int, default=None, help="MiB per kernel (saved in the workspace)")

    sub.add_parser("export", help="grades CSV and the needs-a-human report")
    args = p.parse_args(argv)

    if args.command == "init":
        from autograder.workspace import REPO, KERNEL_MEMORY_MB
        from autograder import settings
        ws = Workspace.create(args.dir, args.course or REPO, args.db,
                              args.timeout or settings.CELL_TIMEOUT_S, args.memory_mb or KERNEL_MEMORY_MB)
        print(f"workspace {ws.root}\n  course   {ws.course}\n  gradebook {ws.db_url}\n"
              f"  assignments {', '.join(ws.assignments())}")
        return 0
    ws = _ws(args)
    if args.command == "collect":
        from autograder.collect import collect
        report = collect(ws, args.source, args.roster)
        print(f"collected {len(report['collected'])} submission(s)")
        for item in report["duplicates"]:
            print(f"  older copy skipped: {item['file']} ({item['why']})")
        for item in report["unplaced"]:
            print(f"  NOT PLACED: {item['file']} ({item['why']})")
        return 0
    if args.command in ("repair", "flags"):
        _check_assignment(ws, args.assignment)
        from autograder.grade import repair_only
        for s, r in repair_only(ws, args.assignment).items():
            if args.command == "flags":
                for f in r["flags"]:
                    print(f"{s}: {f}")
            else:
                print(f"{s}: {r['status']} " + json.dumps(r.get("repair", r.get("detail")), sort_keys=True))
                for f in r["flags"]:
                    print(f"  FLAG {f}")
        return 0
    if args.command == "grade":
        _check_assignment(ws, args.assignment)
        from autograder.grade import grade
        grade(ws, args.assignment, jobs=args.jobs, students=args.student)
        return 0
    if args.command == "feedback":
        _check_assignment(ws, args.assignment)
        from autograder.feedback import feedback
        files = feedback(ws, args.assignment)
        print(f"{len(files)} feedback file(s) under {ws.root / 'feedback'}")
        return 0
    if args.command == "export":
        from autograder.export import export
        for path in export(ws):
            print(f"wrote {path}")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())

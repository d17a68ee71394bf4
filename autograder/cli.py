"""``autograder`` (or ``python -m autograder``): the instructor's grading tool (book/instructor-guide.md).

    autograder init ~/grading/fall                       # workspace, SQLite gradebook
    autograder init DIR --db postgresql://user@host/vit  # any SQLAlchemy URL
    cd ~/grading/fall        # (or pass -w DIR, or set AUTOGRADER_WORKSPACE)
    autograder collect downloads.zip --roster roster.csv
    autograder grade 01-patches --jobs 2
    autograder grade 01-patches --shard 3/8              # one machine's share of a large class
    autograder merge                                     # shard results into the workspace
    autograder feedback 01-patches
    autograder written 03-vit                            # written answers: a CSV to score ...
    autograder written --import written-03-vit.csv       # ... and the scores back into the gradebook
    autograder export
    autograder repair 01-patches                         # repair and flag only, no grading

Exit status: 0 when all went well; 1 when a submission needs a person before the grades are final
(its grading crashed, its file is unreadable, or a notebook could not be placed); 2 when the
command could not do its work (the message says what to fix).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from autograder.errors import GraderError
from autograder.workspace import Workspace

NEEDS_A_PERSON, FAILED = 1, 2


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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autograder", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--workspace", help="grading workspace (default: $AUTOGRADER_WORKSPACE or .)")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("init", help="create a grading workspace outside the repository")
    q.set_defaults(run=cmd_init)
    q.add_argument("dir")
    q.add_argument("--course", default=None, help="course repository holding solutions/ (default: this one)")
    q.add_argument("--db", default=None, help="gradebook SQLAlchemy URL (default: DIR/gradebook.db)")
    q.add_argument("--timeout", type=int, default=None, help="seconds per cell")
    q.add_argument("--memory-mb", type=int, default=None, help="address-space limit per kernel, MiB")

    q = sub.add_parser("collect", help="collect an LMS zip or a folder of notebooks")
    q.set_defaults(run=cmd_collect)
    q.add_argument("source")
    q.add_argument("--roster", required=True, help="CSV with a student_id column (optional name, email)")

    for name, text, command in [("repair", "repair and flag submissions without grading", cmd_repair),
                                ("flags", "list flagged submissions (repairs first)", cmd_flags),
                                ("feedback", "HTML feedback per student, hidden tests removed", cmd_feedback)]:
        q = sub.add_parser(name, help=text)
        q.add_argument("assignment")
        q.set_defaults(run=command)

    q = sub.add_parser("grade", help="repair, flag and autograde an assignment")
    q.set_defaults(run=cmd_grade)
    q.add_argument("assignment")
    q.add_argument("--jobs", type=int, default=1, help="students graded in parallel (processes)")
    q.add_argument("--student", action="append", help="only this student (repeatable)")
    q.add_argument("--shard", default=None, help="I/N: grade only shard I of N into shards/ (then `merge`)")
    q.add_argument("--timeout", type=int, default=None, help="seconds per cell (saved in the workspace)")
    q.add_argument("--memory-mb", type=int, default=None, help="MiB per kernel (saved in the workspace)")

    q = sub.add_parser("merge", help="copy shard results (grade --shard) into the workspace")
    q.set_defaults(run=cmd_merge)
    q.add_argument("folders", nargs="*", help="shard folders (default: every one under DIR/shards)")

    q = sub.add_parser("written", help="written answers: a CSV to score them (ASSIGNMENT), the scores back (--import)")
    q.set_defaults(run=cmd_written)
    q.add_argument("assignment", nargs="?", help="write exports/written-ASSIGNMENT.csv")
    q.add_argument("--import", dest="import_file", metavar="FILE", help="put the scores of a filled-in CSV into the gradebook")
    q.add_argument("--out", default=None, help="where to write the CSV (default: DIR/exports/written-ASSIGNMENT.csv)")

    sub.add_parser("export", help="grades CSV and the needs-a-human report").set_defaults(run=cmd_export)
    return p


# ---------------------------------------------------------------- one function per command: (args) -> exit status
def cmd_init(args) -> int:
    from autograder import settings
    from autograder.workspace import KERNEL_MEMORY_MB

    ws = Workspace.create(args.dir, args.course, args.db,
                          args.timeout or settings.CELL_TIMEOUT_S, args.memory_mb or KERNEL_MEMORY_MB)
    print(f"workspace {ws.root}\n  course   {ws.course}\n  gradebook {ws.db_url}\n"
          f"  assignments {', '.join(ws.assignments())}")
    return 0


def cmd_collect(args) -> int:
    from autograder.collect import collect

    report = collect(_ws(args), args.source, args.roster)
    print(f"collected {len(report['collected'])} submission(s)")
    for item in report["duplicates"]:
        print(f"  older copy skipped: {item['file']} ({item['why']})")
    for item in report["skipped"]:
        print(f"  skipped: {item['file']} ({item['why']})")
    for item in report["unplaced"]:
        print(f"  NOT PLACED: {item['file']} ({item['why']})")
    return NEEDS_A_PERSON if report["unplaced"] else 0


def cmd_repair(args) -> int:
    from autograder.grade import repair_only

    for s, r in repair_only(_ws(args), args.assignment).items():
        what = r.detail if r.status == "corrupt" else json.dumps(r.repair.__dict__, sort_keys=True)
        print(f"{s}: {r.status} {what}")
        for f in r.flags:
            print(f"  FLAG {f}")
    return 0


def cmd_flags(args) -> int:
    from autograder.grade import repair_only

    for s, r in repair_only(_ws(args), args.assignment).items():
        for f in r.flags:
            print(f"{s}: {f}")
    return 0


def cmd_grade(args) -> int:
    from autograder.grade import Shard, grade

    try:
        shard = Shard.parse(args.shard) if args.shard else None
    except ValueError as e:
        raise GraderError(str(e)) from None
    records = grade(_ws(args), args.assignment, jobs=args.jobs, students=args.student, shard=shard)
    bad = [r for r in records.values() if r.status in ("crashed", "corrupt")]
    if bad:
        print(f"{len(bad)} submission(s) not graded: " + ", ".join(f"{r.student} ({r.status})" for r in bad),
              file=sys.stderr)
    return NEEDS_A_PERSON if bad else 0


def cmd_merge(args) -> int:
    from autograder.merge import merge

    ws = _ws(args)
    merged = merge(ws, args.folders or None)
    print(f"merged {sum(map(len, merged.values()))} submission(s) into {ws.db_url}")
    return 0


def cmd_feedback(args) -> int:
    from autograder.feedback import feedback

    ws = _ws(args)
    files = feedback(ws, args.assignment)
    print(f"{len(files)} feedback file(s) under {ws.root / 'feedback'}")
    return 0


def cmd_written(args) -> int:
    import pathlib

    from autograder import written

    ws = _ws(args)
    if args.import_file:
        done = written.import_csv(ws, args.import_file)
        print(f"scored {done['scored']} written answer(s) in {ws.db_url}; {done['skipped']} row(s) without a "
              "score left waiting")
        return 0
    if not args.assignment:
        raise GraderError("name the assignment whose written answers to export, or --import FILE to read scores back")
    path, rows, waiting = written.export_csv(ws, args.assignment, pathlib.Path(args.out) if args.out else None)
    print(f"wrote {path}: {rows} written answer(s), {waiting} waiting for a score; fill in the score (and comment) "
          f"columns, then run: autograder written --import {path}")
    return 0


def cmd_export(args) -> int:
    from autograder.export import export

    for path in export(_ws(args)):
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except GraderError as e:
        print(f"autograder {args.command}: error: {e}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print("interrupted; run the command again (grading starts over for the students it had)", file=sys.stderr)
        return FAILED


if __name__ == "__main__":
    sys.exit(main())

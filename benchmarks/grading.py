"""Grading speed of the instructor tool (``autograder``) with the real nbgrader.

    python benchmarks/grading.py                       # 20 solved 01-patches, --jobs 1 and 2
    python benchmarks/grading.py --n 20 --chapter 03-vit
    python benchmarks/grading.py --shards 2 --jobs     # the class as 2 shards at once, merged
    python benchmarks/grading.py --course --out benchmarks/results/grading_course.json   # every chapter, one student
    python benchmarks/grading.py ... --out grading.json   # also write the results as JSON
    python benchmarks/grading.py --render grading.json    # put them in the instructor guide

Prints seconds per run, notebooks per minute, and notebooks per minute per core (``--jobs N`` and
N shards each keep N cores busy). The submissions are the release with the solution's answers filled
in (full marks), so every cell runs. The shard run starts ``autograder grade --shard i/N`` N times
at once in one workspace (as N machines sharing its folder would), then ``autograder merge``.
Say which machine and how loaded it was when you quote the numbers (the script prints the load).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "autograder")]

from autograder.collect import collect  # noqa: E402
from autograder.grade import grade  # noqa: E402
from autograder.workspace import Workspace, course_assignments, source_notebook  # noqa: E402

from grading_cases import dump, filled  # noqa: E402


def make_class(tmp: pathlib.Path, chapters: list[str], n: int) -> tuple[pathlib.Path, pathlib.Path]:
    downloads, roster = tmp / "downloads", tmp / "roster.csv"
    for chapter in chapters:
        release = json.loads((ROOT / "notebooks" / chapter / f"{chapter}.ipynb").read_text())
        content = dump(filled(release, source_notebook(ROOT, chapter)))
        for k in range(n):
            path = downloads / f"s{k:03d}" / f"{chapter}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    roster.write_text("student_id\n" + "".join(f"s{k:03d}\n" for k in range(n)))
    return downloads, roster


def result(what: str, chapter: str, n: int, cores: int, seconds: float, full: int, load: float) -> dict:
    """One run; ``load``: the 1-minute load average when it started."""
    out = {"run": what, "chapter": chapter, "n": n, "cores": cores, "seconds": round(seconds, 1),
           "per_minute": round(60 * n / seconds, 2), "per_minute_per_core": round(60 * n / seconds / cores, 2),
           "full_marks": f"{full}/{n}", "load_before": round(load, 2)}
    print(json.dumps(out), flush=True)
    return out


def batch(chapters: list[str], n: int, jobs: int) -> list[dict]:
    """One workspace, one ``grade --jobs`` per chapter."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        ws = Workspace.create(tmp / "ws", ROOT)
        collect(ws, *make_class(tmp, chapters, n))
        out = []
        for chapter in chapters:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            records = grade(ws, chapter, jobs=jobs, log=lambda *a: None)
            seconds = time.perf_counter() - t0
            full = sum(r.score == r.max_score for r in records.values())
            out.append(result(f"`--jobs {jobs}`", chapter, n, jobs, seconds, full, load))
        return out


def shards(chapter: str, n: int, count: int) -> dict:
    """``count`` shards of the class at once (``--jobs 1`` each), then ``merge``: wall time of all."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        ws = Workspace.create(tmp / "ws", ROOT)
        collect(ws, *make_class(tmp, [chapter], n))
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "autograder", "-w", str(ws.root)]
        running = [subprocess.Popen([*cmd, "grade", chapter, "--shard", f"{i}/{count}"], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                   for i in range(1, count + 1)]
        logs = [p.communicate()[0] for p in running]
        if any(p.returncode for p in running):
            raise SystemExit("a shard failed:\n" + "\n".join(logs))
        subprocess.run([*cmd, "merge"], cwd=ROOT, check=True, capture_output=True)
        seconds = time.perf_counter() - t0
        full = sum(s.score == s.max_score for s in _scores(ws))
        return result(f"{count} shards at once + `merge`", chapter, n, count, seconds, full, load)


def _scores(ws: Workspace) -> list:
    from autograder import gradebook

    return gradebook.scores(ws.db_url)


GUIDE = ROOT / "book" / "instructor-guide.md"
START, END = "<!-- bench_grading results: start -->", "<!-- bench_grading results: end -->"
COURSE_START, COURSE_END = "<!-- grading per chapter: start -->", "<!-- grading per chapter: end -->"


def render(path: str) -> None:
    """Write the results of ``--out`` into the instructor guide: a ``--course`` run (one submission per
    chapter) as the per-chapter table, any other run as the class table."""
    rows = json.loads(pathlib.Path(path).read_text())
    if all(r["n"] == 1 for r in rows) and len({r["chapter"] for r in rows}) > 1:
        lines = ["| Chapter | Wall time, one submission | Load before |", "|---|---|---|"]
        lines += [f"| `{r['chapter']}` | {r['seconds']:.0f} s | {r['load_before']:.1f} |" for r in rows]
        lines.append(f"| all chapters (sum) | {sum(r['seconds'] for r in rows):.0f} s | |")
        _write_between(COURSE_START, COURSE_END, lines)
    else:
        lines = ["| Run | Chapter | Submissions | Cores busy | Wall time | Notebooks per minute | Per core | "
                 "Load before |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['run']} | `{r['chapter']}` | {r['n']} | {r['cores']} | {r['seconds']:.0f} s | "
                         f"{r['per_minute']:.1f} | {r['per_minute_per_core']:.1f} | {r['load_before']:.1f} |")
        _write_between(START, END, lines)
    print(f"table of {len(rows)} runs written into {GUIDE}")


def _write_between(start: str, end: str, lines: list[str]) -> None:
    text = GUIDE.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{GUIDE} has no {start} ... {end} markers to put the table between")
    GUIDE.write_text(text[: text.index(start)] + "\n".join([start, "", *lines, "", end]) + text[text.index(end) + len(end):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chapter", default="01-patches")
    p.add_argument("--n", type=int, default=20, help="submissions")
    p.add_argument("--jobs", type=int, nargs="*", default=[1, 2], help="--jobs values to run (none: skip)")
    p.add_argument("--shards", type=int, default=0, help="also grade the class as this many shards at once")
    p.add_argument("--repeats", type=int, default=3, help="runs of the single-submission latency (0: skip)")
    p.add_argument("--course", action="store_true", help="every chapter, one student, --jobs 1")
    p.add_argument("--out", default=None, help="write every result to this JSON file")
    p.add_argument("--render", default=None, help="only put the results of this JSON file in the guide")
    args = p.parse_args()
    if args.render:
        return render(args.render)
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    if args.course:
        t0 = time.perf_counter()
        results += batch(course_assignments(ROOT), 1, 1)
        print(f"whole course, one student: {time.perf_counter() - t0:.0f} s")
    else:
        if args.repeats:  # one notebook alone, in a fresh workspace each time: the per-student latency
            alone = [batch([args.chapter], 1, 1)[0] for _ in range(args.repeats)]
            results += alone
            median = statistics.median(r["seconds"] for r in alone)
            print(f"{args.chapter}, one submission alone, {args.repeats} runs: median {median:.1f} s")
        for jobs in args.jobs:
            results += batch([args.chapter], args.n, jobs)
        if args.shards:
            results.append(shards(args.chapter, args.n, args.shards))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Grading speed of the instructor tool (``autograder``) with the real nbgrader.

    python benchmarks/grading.py                       # 20 solved 01-patches, --jobs 1 and 2
    python benchmarks/grading.py --n 20 --chapter 03-vit
    python benchmarks/grading.py --shards 2 --jobs     # the class as 2 shards at once, merged
    python benchmarks/grading.py --course --out benchmarks/results/grading_course.json   # every chapter, one student
    python benchmarks/grading.py --n 20 --jobs 1 2 --shards 2 --repeats 1 --out benchmarks/results/grading_class.json
    python benchmarks/grading.py --render              # put the two committed files in the instructor guide

Prints seconds per run, CPU seconds (this process and its children: nbgrader and its kernels), notebooks
per minute, per minute per core (``--jobs N`` and N shards each keep N cores busy) and per CPU-minute
(which, unlike the others, hardly changes when other work shares the machine). The submissions are
the release with the solution's answers filled in (full autograded marks), so every graded cell runs
(the demonstrations are skipped, as in any grading). The shard run starts ``autograder grade --shard i/N`` N times
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
import textwrap
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "autograder")]

from autograder import cells  # noqa: E402
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


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (nbgrader, the kernels it ran)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def result(what: str, chapter: str, n: int, cores: int, seconds: float, cpu: float, full: int, load: float) -> dict:
    """One run; ``cpu``: CPU seconds it used (unlike the wall time, about the same on a busy machine);
    ``load``: the 1-minute load average when it started."""
    out = {"run": what, "chapter": chapter, "n": n, "cores": cores, "seconds": round(seconds, 1),
           "cpu_seconds": round(cpu, 1), "per_minute": round(60 * n / seconds, 2),
           "per_minute_per_core": round(60 * n / seconds / cores, 2), "per_cpu_minute": round(60 * n / cpu, 2),
           "full_marks": f"{full}/{n}", "load_before": round(load, 2)}
    print(json.dumps(out), flush=True)
    return out


def full_marks(records: dict, chapter: str) -> int:
    """Submissions with every autograded point (written answers wait for a person)."""
    release = cells.read(ROOT / "notebooks" / chapter / f"{chapter}.ipynb")
    return sum(r.score == cells.autograded_points(release) for r in records.values())


def batch(chapters: list[str], n: int, jobs: int) -> list[dict]:
    """One workspace, one ``grade --jobs`` per chapter."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        ws = Workspace.create(tmp / "ws", ROOT)
        collect(ws, *make_class(tmp, chapters, n))
        out = []
        for chapter in chapters:
            load = os.getloadavg()[0]
            t0, cpu0 = time.perf_counter(), cpu_seconds()
            records = grade(ws, chapter, jobs=jobs, log=lambda *a: None)
            seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
            out.append(result(f"`--jobs {jobs}`", chapter, n, jobs, seconds, cpu, full_marks(records, chapter), load))
        return out


def shards(chapter: str, n: int, count: int) -> dict:
    """``count`` shards of the class at once (``--jobs 1`` each), then ``merge``: wall time of all."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        ws = Workspace.create(tmp / "ws", ROOT)
        collect(ws, *make_class(tmp, [chapter], n))
        load = os.getloadavg()[0]
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        cmd = [sys.executable, "-m", "autograder", "-w", str(ws.root)]
        running = [subprocess.Popen([*cmd, "grade", chapter, "--shard", f"{i}/{count}"], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                   for i in range(1, count + 1)]
        logs = [p.communicate()[0] for p in running]
        if any(p.returncode for p in running):
            raise SystemExit("a shard failed:\n" + "\n".join(logs))
        subprocess.run([*cmd, "merge"], cwd=ROOT, check=True, capture_output=True)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        autograded = cells.autograded_points(cells.read(ROOT / "notebooks" / chapter / f"{chapter}.ipynb"))
        full = sum(s.score == autograded for s in _scores(ws))
        return result(f"{count} shards at once + `merge`", chapter, n, count, seconds, cpu, full, load)


def _scores(ws: Workspace) -> list:
    from autograder import gradebook

    return gradebook.scores(ws.db_url)


GUIDE = ROOT / "book" / "instructor-guide.md"
RESULTS = ROOT / "benchmarks" / "results"
COURSE_RESULTS, CLASS_RESULTS = RESULTS / "grading_course.json", RESULTS / "grading_class.json"
START, END = "<!-- bench_grading results: start -->", "<!-- bench_grading results: end -->"
COURSE_START, COURSE_END = "<!-- grading per chapter: start -->", "<!-- grading per chapter: end -->"
PLAN_START, PLAN_END = "<!-- grading a class: start -->", "<!-- grading a class: end -->"
CLASS, CORES, MACHINES = 300, 16, 4  # the class the guide plans for


def render() -> None:
    """Write the committed results into the instructor guide: the per-chapter table (``--course``), the
    class table (the other runs) and the plan for a class of ``CLASS`` students computed from both."""
    course, runs = json.loads(COURSE_RESULTS.read_text()), json.loads(CLASS_RESULTS.read_text())
    lines = ["| Chapter | Wall time, one submission | CPU time | Load before |", "|---|---|---|---|"]
    lines += [f"| `{r['chapter']}` | {r['seconds']:.0f} s | {r['cpu_seconds']:.0f} s | {r['load_before']:.1f} |"
              for r in course]
    lines.append(f"| all chapters (sum) | {sum(r['seconds'] for r in course):.0f} s | "
                 f"{sum(r['cpu_seconds'] for r in course):.0f} s | |")
    _write_between(COURSE_START, COURSE_END, lines)
    lines = ["| Run | Chapter | Submissions | Cores busy | Wall time | CPU time | Notebooks per minute | Per core | "
             "Per CPU-minute | Load before |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['run']} | `{r['chapter']}` | {r['n']} | {r['cores']} | {r['seconds']:.0f} s | "
                     f"{r['cpu_seconds']:.0f} s | {r['per_minute']:.1f} | {r['per_minute_per_core']:.1f} | "
                     f"{r['per_cpu_minute']:.1f} | {r['load_before']:.1f} |")
    _write_between(START, END, lines)
    _write_between(PLAN_START, PLAN_END, plan(course, runs))
    print(f"tables of {len(course)} + {len(runs)} runs and the class plan written into {GUIDE}")


def plan(course: list[dict], runs: list[dict]) -> list[str]:
    """A class of ``CLASS`` students, every chapter, on one and on ``MACHINES`` machines of ``CORES`` cores.

    From the class runs of one chapter: a grading command's fixed CPU cost F and the CPU per submission
    m (one submission alone costs F + m, n of them F + n m). Every chapter is assumed to have the same F,
    so its m is its single-submission CPU time less F. The CPU work is spread over the cores; each
    command's start-up is paid once per chapter and machine."""
    alone = [r for r in runs if r["n"] == 1 and r["cores"] == 1]
    big = max((r for r in runs if r["cores"] == 1 and r["n"] > 1), key=lambda r: r["n"])
    single = statistics.median(r["cpu_seconds"] for r in alone)
    per = (big["cpu_seconds"] - single) / (big["n"] - 1)
    fixed = max(single - per, 0.0)
    marginal = {r["chapter"]: max(r["cpu_seconds"] - fixed, per / 4) for r in course}
    work = CLASS * sum(marginal.values())  # CPU seconds, without the start-ups
    one = (len(course) * fixed + work / CORES) / 60
    many = (len(course) * fixed + work / (CORES * MACHINES)) / 60
    return [*textwrap.wrap(
        f"From these files: one grading command costs about {fixed:.0f} CPU seconds to start (building the "
        f"release and the gradebook, starting nbgrader) and {per:.1f} CPU seconds per `{big['chapter']}` "
        f"submission ({60 / per:.1f} notebooks per CPU-minute); the other chapters' cost per submission is their "
        f"CPU time above less that start-up, {sum(marginal.values()):.0f} CPU seconds for the whole course.", 104, break_on_hyphens=False),
        "",
        f"| A class of {CLASS} students, {len(course)} chapters | CPU work | Wall time |",
        "|---|---|---|",
        f"| one machine of {CORES} cores (`--jobs {CORES}`) | {(work + len(course) * fixed) / 3600:.1f} CPU-hours | "
        f"about {one:.0f} min |",
        f"| {MACHINES} such machines (`--shard I/{MACHINES} --jobs {CORES}`, then `merge`) | "
        f"{(work + MACHINES * len(course) * fixed) / 3600:.1f} CPU-hours | about {many:.0f} min |",
        "",
        *textwrap.wrap("The wall times assume a core there does the work of a core here, the cores stay busy (a "
                       "class much larger than the number of workers) and memory for that many kernels (each may "
                       "map up to `--memory-mb` of address space, 6000 MiB by default).", 104, break_on_hyphens=False),
    ]


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
    p.add_argument("--render", action="store_true", help="only put the committed results (benchmarks/results/grading_"
                   "course.json, grading_class.json) in the guide")
    args = p.parse_args()
    if args.render:
        return render()
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

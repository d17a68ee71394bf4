"""Grading speed of the instructor tool (``python -m autograder``) with the real nbgrader.

    python benchmarks/bench_grading.py                       # 20 solved 01-patches, --jobs 1 and 2
    python benchmarks/bench_grading.py --n 20 --chapter 03-vit
    python benchmarks/bench_grading.py --course              # every chapter for one student

Prints seconds per run, per notebook and notebooks per minute. The submissions are the release
with the solution's answers filled in (full marks), so every cell runs. Say which machine and how
loaded it was when you quote the numbers.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "autograder")]

from grading_cases import dump, filled  # noqa: E402

from autograder.collect import collect  # noqa: E402
from autograder.grade import grade  # noqa: E402
from autograder.workspace import Workspace  # noqa: E402


def make_class(tmp: pathlib.Path, chapters: list[str], n: int) -> tuple[pathlib.Path, pathlib.Path]:
    downloads = tmp / "downloads"
    for chapter in chapters:
        source = json.loads((ROOT / "solutions" / chapter / f"{chapter}.ipynb").read_text())
        release = json.loads((ROOT / "notebooks" / chapter / f"{chapter}.ipynb").read_text())
        content = dump(filled(release, source))
        for k in range(n):
            path = downloads / f"s{k:03d}" / f"{chapter}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    roster = tmp / "roster.csv"
    roster.write_text("student_id\n" + "".join(f"s{k:03d}\n" for k in range(n)))
    return downloads, roster


def run(chapters: list[str], n: int, jobs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        ws = Workspace.create(tmp / "ws", ROOT)
        collect(ws, *make_class(tmp, chapters, n))
        out = {}
        for chapter in chapters:
            t0 = time.perf_counter()
            records = grade(ws, chapter, jobs=jobs, log=lambda *a: None)
            seconds = time.perf_counter() - t0
            full = sum(r["score"] == r["max_score"] for r in records.values())
            out[chapter] = {"seconds": round(seconds, 1), "per_notebook": round(seconds / n, 1),
                            "per_minute": round(60 * n / seconds, 1), "full_marks": f"{full}/{n}"}
            print(f"{chapter} n={n} jobs={jobs}: {out[chapter]}", flush=True)
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chapter", default="01-patches")
    p.add_argument("--n", type=int, default=20, help="submissions")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3, help="runs of the single-submission latency")
    p.add_argument("--course", action="store_true", help="every chapter, one student, --jobs 1")
    args = p.parse_args()
    if args.course:
        chapters = sorted(d.name for d in (ROOT / "solutions").iterdir() if d.is_dir())
        t0 = time.perf_counter()
        run(chapters, 1, 1)
        print(f"whole course, one student: {time.perf_counter() - t0:.0f} s")
        return
    # one notebook alone, graded in a fresh workspace each time: the per-student latency
    alone = [run([args.chapter], 1, 1)[args.chapter]["seconds"] for _ in range(args.repeats)]
    print(f"{args.chapter}, one submission alone, {args.repeats} runs: median {statistics.median(alone):.1f} s")
    for jobs in args.jobs:
        run([args.chapter], args.n, jobs)


if __name__ == "__main__":
    main()

"""Estimate how long each chapter takes a student; the instructor guide shows the table this writes.

    python benchmarks/student_time.py --report artifacts/colab/report.json

An estimate, not a measurement with students, from three counts per chapter:

- reading: the words of the reading page (prose, without code) and of the student notebook's text,
  at 200 words a minute;
- answers: the non-blank lines of the reference answers (between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``), at two minutes a line (writing, running the check, fixing a mistake);
- running: the CPU seconds of the answered student notebook in the Colab-like test
  (tests/test_colab.py writes them to artifacts/colab/report.json), the install included.

Writes benchmarks/results/student_time.csv (the guide's table) and student_time.json (the inputs).
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import re
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the authoring package is not installed: it runs from its tree

from authoring import registry  # noqa: E402
from autograder import cells  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORDS_PER_MINUTE = 200
MINUTES_PER_LINE = 2


def words(text: str) -> int:
    return len(re.findall(r"[A-Za-z][A-Za-z'-]*", text))


def page_words(chapter: registry.Chapter) -> int:
    text = (ROOT / chapter.page).read_text()
    text = re.sub(r"\A---.*?---", "", text, flags=re.S)  # front matter
    return words(re.sub(r"```.*?```", "", text, flags=re.S))  # code cells and fenced blocks


def notebook_words(chapter: registry.Chapter) -> int:
    nb = nbformat.read(ROOT / chapter.student_notebook, as_version=4)
    return sum(words(c.source) for c in nb.cells if c.cell_type == "markdown")


def answer_lines(chapter: registry.Chapter) -> int:
    nb = nbformat.read(ROOT / chapter.source_notebook, as_version=4)
    total = 0
    for cell in nb.cells:
        if cells.kind(cell) == "solution":
            for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, flags=re.S):
                total += sum(1 for line in block.splitlines() if line.strip() and not line.strip().startswith("#"))
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=pathlib.Path, default=ROOT / "artifacts" / "colab" / "report.json",
                        help="the Colab-like test's report (tests/test_colab.py)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        parser.error(f"{args.report} is missing: run `pytest tests/test_colab.py -n 0` first")
    cpu = json.loads(args.report.read_text())["cpu_seconds"]
    rows, inputs = [], {}
    for c in registry.chapters():
        read_words = page_words(c) + notebook_words(c)
        lines = answer_lines(c)
        run_s = cpu[c.id]
        minutes = read_words / WORDS_PER_MINUTE + lines * MINUTES_PER_LINE + run_s / 60
        inputs[c.id] = {"words": read_words, "answer_lines": lines, "run_cpu_s": run_s, "minutes": round(minutes)}
        rows.append([f"{c.number}. {c.title}", f"{read_words / WORDS_PER_MINUTE:.0f} min ({read_words} words)",
                     f"{lines * MINUTES_PER_LINE} min ({lines} lines)", f"{run_s / 60:.1f} min",
                     f"about {5 * round(minutes / 5)} min"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "student_time.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Chapter", "Reading", "Answers", "Notebook run (CPU)", "Estimate"])
        writer.writerows(rows)
    (RESULTS / "student_time.json").write_text(json.dumps(
        {"words_per_minute": WORDS_PER_MINUTE, "minutes_per_answer_line": MINUTES_PER_LINE,
         "report": str(args.report.relative_to(ROOT) if args.report.is_relative_to(ROOT) else args.report),
         "chapters": inputs}, indent=1) + "\n")
    for row in rows:
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

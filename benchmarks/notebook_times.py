"""How long each chapter's solution notebook takes to run, top to bottom, in its ``tiny`` budget.

    python benchmarks/notebook_times.py                      # every chapter, writes the result file
    python benchmarks/notebook_times.py 03-vit 06-mae        # some chapters (merged into the file)

Each notebook runs through nbval in a fresh Jupyter kernel, from its own folder, with
``VITCOURSE_BUDGET=tiny``, as a student's CPU session would (``benchmarks/run_notebooks.py``, the runner
of ``python3.11 tasks.py gpu`` too). Two numbers per chapter: the wall-clock seconds, and the CPU seconds
the kernel used (user + system, its threads and finished child processes included), which depend much
less on other work running on the machine. The result file, ``benchmarks/results/notebook_times.json``,
records both with the command, the date, the CPU count, the load average before and after, and the
library versions; the intro page renders its time-per-chapter table from it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "notebook_times.json"
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this tree's library and its authoring package

from authoring import registry  # noqa: E402
from benchmarks import run_notebooks  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter ids (default: every registered chapter)")
    parser.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds")
    args = parser.parse_args(argv)
    ids = args.chapters or [c.id for c in registry.chapters()]
    result = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    result.setdefault("seconds", {})
    result.setdefault("cpu_seconds", {})
    load_before, threads = os.getloadavg(), torch.get_num_threads()  # before pytest's conftest.py sets 1
    runs = run_notebooks.run(ids, "tiny", cell_timeout=args.timeout)
    failed = {c: r.failed_cells for c, r in runs.items() if not r.passed}
    if failed:
        print(f"not recorded: cells failed in {json.dumps(failed, indent=1)}", file=sys.stderr)
        return 1
    for chapter_id, run in runs.items():
        wall, cpu = run.seconds, run.usage["cpu_seconds"]
        result["seconds"][chapter_id], result["cpu_seconds"][chapter_id] = round(wall, 1), round(cpu, 1)
        print(f"{chapter_id:<14} {wall:7.1f} s wall, {cpu:7.1f} s CPU", flush=True)
    result.update({
        "what": "seconds to run each solution notebook top to bottom in a fresh kernel (nbval), budget tiny: "
                "wall clock (seconds) and the kernel's CPU time (cpu_seconds)",
        "command": "python benchmarks/notebook_times.py " + " ".join(args.chapters),
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads": threads,
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
    })
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long each chapter's solution notebook takes to run, top to bottom, in its ``tiny`` budget.

    python benchmarks/notebook_times.py                      # every chapter, writes the result file
    python benchmarks/notebook_times.py 03-vit 06-mae        # some chapters (merged into the file)

Each notebook runs in a fresh Jupyter kernel (nbclient), from its own folder, with
``VITCOURSE_BUDGET=tiny``, as a student's CPU session would. Two numbers per chapter: the wall-clock
seconds, and the CPU seconds the kernel used (user + system, its threads and child processes
included), which depend much less on other work running on the machine. The result file,
``benchmarks/results/notebook_times.json``, records both with the command, the date, the CPU count,
the load average before and after, and the library versions; the intro page renders its
time-per-chapter table from it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time

import nbformat
import torch
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "notebook_times.json"
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this tree's library and its authoring package

from authoring import registry  # noqa: E402

# Appended to the notebook in memory: the kernel's own CPU time so far.
CPU_CELL = ("import resource\n"
            "_self = resource.getrusage(resource.RUSAGE_SELF)\n"
            "_children = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(_self.ru_utime + _self.ru_stime + _children.ru_utime + _children.ru_stime)")


def run_one(chapter_id: str, timeout: int) -> tuple[float, float]:
    """(wall seconds, kernel CPU seconds) to execute ``solutions/<id>/<id>.ipynb`` in a fresh kernel.
    The file itself is not modified."""
    path = ROOT / "solutions" / chapter_id / f"{chapter_id}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CPU_CELL))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - start
    cpu = float("".join(o.get("text", "") for o in nb.cells[-1].outputs).strip())
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter ids (default: every registered chapter)")
    parser.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds")
    args = parser.parse_args(argv)
    ids = args.chapters or [c.id for c in registry.chapters()]
    os.environ["VITCOURSE_BUDGET"] = "tiny"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    result.setdefault("seconds", {})
    result.setdefault("cpu_seconds", {})
    load_before = os.getloadavg()
    for chapter_id in ids:
        wall, cpu = run_one(chapter_id, args.timeout)
        result["seconds"][chapter_id], result["cpu_seconds"][chapter_id] = round(wall, 1), round(cpu, 1)
        print(f"{chapter_id:<14} {wall:7.1f} s wall, {cpu:7.1f} s CPU", flush=True)
    result.update({
        "what": "seconds to run each solution notebook top to bottom in a fresh kernel, budget tiny: "
                "wall clock (seconds) and the kernel's CPU time (cpu_seconds)",
        "command": "python benchmarks/notebook_times.py " + " ".join(args.chapters),
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
    })
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the benchmarks keep their numbers: ``benchmarks/results/<chapter-id>.json``.

Each file maps a run name to the command that produced it, when and where it ran (platform, CPU count,
torch version and threads, and the load average when it was saved: other work on the machine makes
times longer), and its result. Every benchmark records this way. The reading pages render their tables
from these files; rerunning a benchmark updates its entry and keeps the others.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import shlex
import sys

import torch

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parent.parent


def save(chapter: str, run: str, result: dict) -> pathlib.Path:
    """Store ``result`` as run ``run`` of chapter ``chapter`` (e.g. "04-deit"), with its provenance."""
    path = RESULTS / f"{chapter}.json"
    data = json.loads(path.read_text()) if path.exists() else {"chapter": chapter, "runs": {}}
    script = pathlib.Path(sys.argv[0]).resolve()
    script = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    data["runs"][run] = {
        "command": shlex.join(["python", str(script), *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "result": result,
    }
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"saved to {path.relative_to(ROOT)} as {run!r}")
    return path

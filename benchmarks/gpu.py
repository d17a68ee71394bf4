"""The course on a GPU: every solution notebook in its `full` budget, measured, in one command.

    python3.11 tasks.py gpu                  every chapter
    python3.11 tasks.py gpu 03-vit 06-mae    some chapters (merged into the GPU's result file)

First the memory each chapter should need (``benchmarks/gpu_memory.py``), against a Colab T4's 15 GB
and against this GPU. Then every solution notebook runs through nbval (``pytest --nbval-lax``, one
fresh kernel each; ``benchmarks/run_notebooks.py``) with ``VITCOURSE_BUDGET=full``, and the result
file ``benchmarks/results/gpu-<device>.json`` (e.g. ``gpu-tesla-t4.json``) records, per chapter: whether
every cell ran, the device its kernel saw, the wall-clock and CPU seconds, the peak GPU memory PyTorch
allocated, the estimate, and the final metrics of every training run (``vitcourse.metrics``). The
book's introduction renders its GPU column from the newest such file ("not measured" until one
exists); commit the file.

Without a GPU the command stops, unless ``VITCOURSE_MAX_STEPS`` caps every training loop: it then
runs as a smoke test of itself on the CPU (the test suite does this), its file records the cap and
the pages say that its numbers are not the full budget's. ``VITCOURSE_RESULTS`` names another
folder for the result file (the pages read the same variable).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shlex
import sys

import torch

from authoring import registry
from benchmarks import gpu_memory, run_notebooks
from vitcourse import env, metrics

ROOT = pathlib.Path(__file__).resolve().parent.parent


def results_folder() -> pathlib.Path:
    return pathlib.Path(os.environ.get("VITCOURSE_RESULTS") or ROOT / "benchmarks" / "results")


def result_path(device: str) -> pathlib.Path:
    """``gpu-<device>.json``, the device's name in lower case with dashes ("Tesla T4" -> gpu-tesla-t4.json)."""
    return results_folder() / f"gpu-{re.sub(r'[^a-z0-9]+', '-', device.lower()).strip('-')}.json"


def newest(folder: pathlib.Path | None = None) -> dict | None:
    """The GPU result file with the latest date in ``folder`` (default: the results folder), or None."""
    found = [json.loads(p.read_text()) for p in sorted((folder or results_folder()).glob("gpu-*.json"))]
    return max(found, key=lambda r: r["date"], default=None)


def _device() -> tuple[str, float | None]:
    if torch.cuda.is_available():
        return metrics.device_name(), torch.cuda.get_device_properties(0).total_memory / 2**30
    return "cpu", None


def _summary(chapter: str, run: run_notebooks.NotebookRun, estimate_mb: float) -> dict:
    return {"passed": run.passed, "device": run.usage.get("device"), "seconds": round(run.seconds, 1),
            "cpu_seconds": round(run.usage.get("cpu_seconds", 0.0), 1),
            "peak_gpu_memory_mb": run.usage.get("peak_gpu_memory_mb"),
            "peak_host_memory_mb": run.usage.get("peak_host_memory_mb"),
            "estimate_mb": round(estimate_mb, 1), "failed_cells": run.failed_cells,
            "expected_failures": run.expected_failures, "metrics": run.metrics}


def _metric_text(found: list[dict]) -> str:
    last = next((m for m in reversed(found) if m.get("source") == "fit"), None)
    if last is None:
        return ""
    parts = [f"{k} {last[k]:.3f}" for k in ("loss", "test_acc") if isinstance(last.get(k), float)]
    return f"last run: {last['steps']} steps, " + ", ".join(parts)


def _mb(value) -> str:
    return "-" if value is None else f"{value:.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter ids (default: every registered chapter)")
    parser.add_argument("--cell-timeout", type=float, default=3600, help="seconds a cell may run (default 3600)")
    args = parser.parse_args(argv)
    known = [c.id for c in registry.chapters()]
    if unknown := sorted(set(args.chapters) - set(known)):
        parser.error(f"unknown chapter(s) {unknown}; known: {known}")
    ids = args.chapters or known
    device, device_gb = _device()
    cap = env.max_steps()
    if device == "cpu" and cap is None:
        print("No CUDA GPU here: this command measures the full budget on a GPU. To try it on a CPU, cap every "
              "training loop, e.g. VITCOURSE_MAX_STEPS=1 python3.11 tasks.py gpu (a smoke test, not a measurement).",
              file=sys.stderr)
        return 2

    estimates = gpu_memory.chapter_estimates()
    print(gpu_memory.table({c: estimates[c] for c in ids}))
    needed = max(gpu_memory.peak(estimates[c]) for c in ids) / 2**30
    if device_gb is not None:
        print(f"\nThis GPU: {device}, {device_gb:.1f} GB; the largest estimate is {needed:.1f} GB."
              + ("  It may not fit." if needed > device_gb else ""))
    print(f"\nRunning {len(ids)} solution notebook(s) with nbval, budget full"
          + (f", every training loop capped at {cap} steps (VITCOURSE_MAX_STEPS)" if cap else "") + " ...", flush=True)
    runs = run_notebooks.run(ids, "full", cell_timeout=args.cell_timeout)

    path = result_path(device)
    result = json.loads(path.read_text()) if path.is_file() else {"chapters": {}}
    result["chapters"].update({c: _summary(c, runs[c], gpu_memory.peak(estimates[c]) / 2**20) for c in runs})
    result.update({
        "what": "each solution notebook run top to bottom through nbval (pytest --nbval-lax) in a fresh kernel, "
                "budget full: wall-clock and CPU seconds, peak GPU memory allocated by PyTorch (MiB), the "
                "estimate of benchmarks/gpu_memory.py (MiB), final metrics of every training run",
        "command": shlex.join(["python3.11", "tasks.py", "gpu", *args.chapters]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device, "device_memory_gb": None if device_gb is None else round(device_gb, 1),
        "budget": "full", "max_steps": cap,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "cuda": torch.version.cuda},
    })
    result["chapters"] = {c: result["chapters"][c] for c in known if c in result["chapters"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")

    print(f"\n{'chapter':<14}{'cells':>7}{'wall':>9}{'peak GPU':>10}{'estimate':>10}  metrics")
    for chapter, run in runs.items():
        row = result["chapters"][chapter]
        status = "ok" if run.passed else f"{len(run.failed_cells)} fail"
        print(f"{chapter:<14}{status:>7}{row['seconds'] / 60:>6.1f} min{_mb(row['peak_gpu_memory_mb']):>10}"
              f"{_mb(row['estimate_mb']):>10}  {_metric_text(run.metrics)}")
        for failure in run.failed_cells:
            print(f"{'':<14}cell {failure['cell']}: {failure['error']}")
    print(f"wrote {path}")
    return 0 if all(run.passed for run in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

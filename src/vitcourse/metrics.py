"""What a notebook run reports to the course's benchmarks: its final metrics, its time and its memory.

Nothing happens unless ``VITCOURSE_METRICS`` names a file: the benchmarks that run the solution
notebooks (``python3.11 tasks.py gpu``, ``benchmarks/notebook_times.py``) set it, one file per
notebook, and read it back. Each call appends one JSON line:

- ``record(source, **values)``: final numbers of a run. ``vitcourse.train.fit`` records every
  training run (steps, final loss, accuracies, seconds, parameters); a notebook may record what it
  reports at its end, e.g. ``metrics.record("few-shot", accuracy=0.54)``.
- ``watch()``: after every cell of the kernel it is called in, the device, the peak GPU memory so
  far, the kernel's peak resident memory and its CPU seconds (the benchmarks call it at kernel
  start-up). Every line names its code cell, counted from 0.
"""

from __future__ import annotations

import json
import numbers
import os
import sys
import time

import torch

try:
    import resource
except ImportError:  # Windows: no getrusage
    resource = None

ENV = "VITCOURSE_METRICS"


_cells_done: int | None = None  # cells finished since watch(); None before


def _cell() -> int | None:
    """The code cell running now: counted from 0 after ``watch()``, else IPython's execution count, or None
    outside IPython. (A runner that executes without history, as nbval does, leaves the count at 1.)"""
    if _cells_done is not None:
        return _cells_done
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return getattr(shell, "execution_count", None)


def _plain(value):
    """A JSON value: tensors and NumPy scalars become numbers (or lists), other objects their text."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _append(line: dict) -> None:
    path = os.environ.get(ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


def record(source: str, **values) -> None:
    """Append ``values`` (numbers, tensors, short texts) as the final metrics of ``source`` to the file
    named by ``VITCOURSE_METRICS``; do nothing when it is unset."""
    if {"kind", "source", "cell"} & values.keys():
        raise ValueError(f"metrics.record: 'kind', 'source' and 'cell' name the record itself; rename "
                         f"{sorted({'kind', 'source', 'cell'} & values.keys())}")
    if os.environ.get(ENV):
        _append({"kind": "metric", "source": source, "cell": _cell(), **{k: _plain(v) for k, v in values.items()}})


def device_name() -> str:
    """The GPU's name (e.g. "Tesla T4"), or "cpu"."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def usage() -> dict:
    """This process's device, peak GPU memory (MiB, None without a GPU), peak resident memory (MiB) and
    CPU seconds (its own and its finished children's: DataLoader workers, pip). A process that has not
    used its GPU is left so: "cuda (not used)", 0 MiB."""
    if not torch.cuda.is_available():
        device, gpu = "cpu", None
    elif torch.cuda.is_initialized():
        device, gpu = device_name(), torch.cuda.max_memory_allocated() / 2**20
    else:
        device, gpu = "cuda (not used)", 0.0
    found = {"device": device, "peak_gpu_memory_mb": gpu, "peak_host_memory_mb": None,
             "cpu_seconds": time.process_time()}
    if resource is not None:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        found["peak_host_memory_mb"] = max(own.ru_maxrss, children.ru_maxrss) / 1024  # ru_maxrss: KiB on Linux
        found["cpu_seconds"] = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return found


def _after_cell(*_) -> None:
    global _cells_done
    _append({"kind": "usage", "cell": _cell(), **usage()})
    _cells_done += 1


def watch() -> None:
    """In an IPython kernel: append ``usage()`` to the ``VITCOURSE_METRICS`` file after every cell."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("metrics.watch() needs an IPython kernel (it runs after every cell)")
    global _cells_done
    if _after_cell not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _after_cell)
        _cells_done = 0


def read(path: str | os.PathLike) -> dict:
    """What a notebook's metrics file holds: ``{"metrics": [...], "usage": last usage line or {}}``, with
    the peak memories taken over all its usage lines."""
    lines = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
    found = [{k: v for k, v in line.items() if k != "kind"} for line in lines if line["kind"] == "metric"]
    usages = [line for line in lines if line["kind"] == "usage"]
    last = dict(usages[-1]) if usages else {}
    for key in ("peak_gpu_memory_mb", "peak_host_memory_mb"):
        values = [u[key] for u in usages if u.get(key) is not None]
        if values:
            last[key] = max(values)
    last.pop("kind", None), last.pop("cell", None)
    return {"metrics": found, "usage": last}

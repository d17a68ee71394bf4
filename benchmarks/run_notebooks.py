"""Run solution notebooks through nbval, one fresh Jupyter kernel each, and measure every run.

``run(chapter_ids, budget)`` is ``pytest --nbval-lax solutions/<id>/<id>.ipynb ...`` (the same run as an
instructor's ``pytest --nbval-lax solutions/``: every cell must run without error) with
``VITCOURSE_BUDGET=budget``, plus what the benchmarks need of each notebook:

- its wall-clock seconds (nbval's items: kernel start, every cell, kernel stop);
- what the kernel reported through ``vitcourse.metrics`` (``VITCOURSE_METRICS`` names one file per
  notebook; an IPython start-up file calls ``metrics.watch()``): device, peak GPU memory, peak resident
  memory and CPU seconds after the last cell, and the final metrics of its training runs;
- the cells that failed, and the graded cells that were allowed to fail under ``VITCOURSE_MAX_STEPS``.

Used by ``benchmarks/gpu.py`` (``python3.11 tasks.py gpu``, the `full` budget) and
``benchmarks/notebook_times.py`` (the `tiny` budget on a CPU).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import tempfile
from dataclasses import dataclass, field

import pytest

from authoring import registry
from vitcourse import metrics

ROOT = pathlib.Path(__file__).resolve().parent.parent
INLINE = "module://matplotlib_inline.backend_inline"  # a kernel's own backend (the suite sets Agg)
STARTUP = "from vitcourse import metrics\nmetrics.watch()\n"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class NotebookRun:
    chapter: str
    seconds: float = 0.0
    failed_cells: list = field(default_factory=list)  # [{"cell": n, "error": "..."}]
    expected_failures: list = field(default_factory=list)  # graded cells under a step cap
    usage: dict = field(default_factory=dict)  # vitcourse.metrics.usage() after the last cell
    metrics: list = field(default_factory=list)  # vitcourse.metrics.record() lines

    @property
    def passed(self) -> bool:
        return not self.failed_cells


def _chapter(nodeid: str) -> str:
    return pathlib.PurePath(nodeid.split("::")[0]).stem


def _cell(nodeid: str) -> int:
    return int(nodeid.rsplit("Cell ", 1)[1])


def _last_error_line(report) -> str:
    lines = [line.strip() for line in _ANSI.sub("", report.longreprtext).splitlines() if line.strip()]
    return lines[-1][:300] if lines else "failed"


class _Recorder:
    """pytest plugin: one NotebookRun per notebook. Before its kernel starts, the kernel's environment:
    its own metrics file, and ``kernel_env`` (a None value removes the variable) over what the
    repository's conftest.py set for the test suite."""

    def __init__(self, folder: pathlib.Path, kernel_env: dict[str, str | None]):
        self.folder, self.kernel_env, self.runs = folder, kernel_env, {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        chapter = _chapter(item.nodeid)
        if chapter not in self.runs:  # the notebook's first cell: its kernel starts after this hook
            self.runs[chapter] = NotebookRun(chapter)
            for name, value in {**self.kernel_env, metrics.ENV: str(self.folder / f"{chapter}.jsonl")}.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def pytest_runtest_logreport(self, report):
        run = self.runs[_chapter(report.nodeid)]
        run.seconds += report.duration
        if report.failed:
            run.failed_cells.append({"cell": _cell(report.nodeid), "error": _last_error_line(report)})
        elif report.skipped and hasattr(report, "wasxfail"):  # failed, as allowed (an xfail; not an xpass)
            run.expected_failures.append(_cell(report.nodeid))


@contextlib.contextmanager
def _environment(**variables: str):
    saved = dict(os.environ)
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(chapter_ids: list[str], budget: str, cell_timeout: float = 3600, quiet: bool = True) -> dict[str, NotebookRun]:
    """Chapter id -> its NotebookRun; every notebook runs in its own kernel, one after the other, from
    its own folder."""
    paths = [str(ROOT / registry.chapter(c).source_notebook) for c in chapter_ids]
    # the kernels get the caller's thread setting, not the one conftest.py gives the test suite's workers
    kernel_env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "MPLBACKEND": INLINE}
    with tempfile.TemporaryDirectory() as tmp, _environment(VITCOURSE_BUDGET=budget,
                                                            IPYTHONDIR=str(pathlib.Path(tmp) / "ipython")):
        startup = pathlib.Path(tmp) / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-vitcourse-metrics.py").write_text(STARTUP)
        recorder = _Recorder(pathlib.Path(tmp), kernel_env)
        args = ["--nbval-lax", "-n", "0", "-p", "no:cacheprovider", "-rfE", f"--nbval-cell-timeout={cell_timeout}",
                "--rootdir", str(ROOT), *(["-q"] if quiet else []), *paths]
        here = os.getcwd()
        os.chdir(ROOT)  # the repository's pytest settings and conftest.py
        try:
            code = pytest.main(args, plugins=[recorder])
        finally:
            os.chdir(here)
        if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            raise RuntimeError(f"pytest {' '.join(args)} stopped with {code!r}")
        for chapter, notebook in recorder.runs.items():
            found = metrics.read(pathlib.Path(tmp) / f"{chapter}.jsonl")
            notebook.usage, notebook.metrics = found["usage"], found["metrics"]
    return {c: recorder.runs[c] for c in chapter_ids if c in recorder.runs}

"""The `full` budget's code runs, and every solution's model stays on one device, without a GPU.

No GPU runs the suite, so code behind ``BUDGET == "full"`` would rot unseen. Each solution notebook
runs here, in-process, with ``VITCOURSE_BUDGET=full`` and ``VITCOURSE_MAX_STEPS`` capping every
training loop at a few steps (``vitcourse.env.steps``): every ungraded cell must run without error
(graded cells may fail: their training is capped too). Downloads fail at once (``HF_HUB_OFFLINE``,
``VITCOURSE_OFFLINE``) and each notebook says so in one line.

Then the classes and answer functions of the solution, called as its graded cells call them, run once
more on the meta device (tests/devicecheck.py): a tensor created on the CPU inside them fails there as
it would on a GPU.
"""

import ast
import contextlib
import os
import time

import pytest

from authoring import registry

from devicecheck import DeviceMismatch, on_meta, record_calls
from nbexec import NotebookRun

CHAPTERS = registry.chapters()
MAX_STEPS = 1


class FullBudgetRun(NotebookRun):
    @contextlib.contextmanager
    def _environment(self, seed: int):
        with super()._environment(seed):
            os.environ.update(VITCOURSE_BUDGET="full", VITCOURSE_MAX_STEPS=str(MAX_STEPS), HF_HUB_OFFLINE="1",
                              VITCOURSE_OFFLINE="1")
            yield


_RUNS: dict = {}


def run_of(chapter) -> FullBudgetRun:
    """The chapter's solution, executed once per test session with the full budget and the step cap."""
    if chapter.id not in _RUNS:
        start = time.perf_counter()
        _RUNS[chapter.id] = FullBudgetRun(chapter.source_notebook)
        _RUNS[chapter.id].seconds = time.perf_counter() - start
    return _RUNS[chapter.id]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.id)
def test_full_budget_runs_with_a_step_cap(chapter):
    run = run_of(chapter)
    print(f"{chapter.id}: full budget, {MAX_STEPS} steps per loop: {run.seconds:.0f} s")
    assert run.errors == [], "\n".join(run.errors)


def _answers(run) -> tuple[dict, list]:
    """The functions (name -> function) and the classes the solution's answer cells define."""
    functions, classes = {}, []
    for cell in run.cells:
        if cell.kind == "solution":
            for node in ast.parse(cell.code).body:
                if isinstance(node, ast.FunctionDef):
                    functions[node.name] = run.namespace[node.name]
                elif isinstance(node, ast.ClassDef):
                    classes.append(run.namespace[node.name])
    return functions, classes


def _outside_graded_cells(run):
    """True for a class defined in an ordinary cell (a graded cell's helpers run on the CPU)."""
    graded = {f"<cell {c.index}>" for c in run.cells if c.kind == "test"}
    return lambda cls: getattr(getattr(cls.forward, "__code__", None), "co_filename", None) not in graded


def solution_calls(run) -> dict:
    """name -> [(callable, args, kwargs), ...]: the first calls of every answer function and method,
    and of every module class the notebook defines outside its graded cells, as the graded cells
    make them."""
    functions, classes = _answers(run)
    with record_calls(functions, classes, keep=_outside_graded_cells(run)) as calls:
        run.rerun_tests(overrides=calls.wrapped)
    return calls.seen


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.id)
def test_solution_models_stay_on_one_device(chapter):
    calls = solution_calls(run_of(chapter))
    assert calls, f"{chapter.id}: no answer function or notebook class was called by the graded cells"
    problems = [f"{name}: {error}" for name, seen in calls.items() for fn, args, kwargs in seen
                if (error := on_meta(fn, *args, **kwargs))]
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_a_mask_built_on_the_cpu_is_caught():
    """The mistake chapter 7's own answer once made: the shifted-window mask built on the CPU."""
    ns = run_of(registry.chapter("07-swin")).namespace
    torch, SwinBlock = ns["torch"], ns["SwinBlock"]
    window_partition, window_reverse, mask_of = ns["window_partition"], ns["window_reverse"], ns["shifted_window_mask"]

    class MaskOnCpu(SwinBlock):
        def forward(self, x):
            B, H, W, C = x.shape
            M, s = self.window_size, self.shift_size
            y = torch.roll(self.norm1(x), shifts=(-s, -s), dims=(1, 2))
            windows = self.attn(window_partition(y, M).reshape(-1, M * M, C), mask_of(H, W, M, s))
            y = torch.roll(window_reverse(windows.reshape(-1, M, M, C), M, H, W), shifts=(s, s), dims=(1, 2))
            return x + y + self.mlp(self.norm2(x + y))

    x = torch.randn(1, 8, 8, 8)
    MaskOnCpu(8, 2, window_size=4, shift_size=2)(x)  # runs on the CPU
    assert on_meta(MaskOnCpu(8, 2, window_size=4, shift_size=2), x).startswith(DeviceMismatch.__name__)
    assert on_meta(SwinBlock(8, 2, window_size=4, shift_size=2), x) is None

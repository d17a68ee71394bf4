"""The `full` budget runs without a GPU, through the command that measures it on one.

No GPU runs the suite, so code behind ``BUDGET == "full"`` would rot unseen. ``python3.11 tasks.py gpu``
(``benchmarks/gpu.py``) runs here as it would on a GPU, except that ``VITCOURSE_MAX_STEPS=1`` caps every
training loop: every solution notebook runs through nbval (``pytest --nbval-lax``) in its own kernel
with ``VITCOURSE_BUDGET=full``, and no cell may fail but the graded cells whose training the cap cuts
short (xfail). Downloads fail at once (``HF_HUB_OFFLINE``, ``VITCOURSE_OFFLINE``) and each notebook says
so in one line. The command prints its memory estimate per chapter against a Colab T4 first, writes its
result file, and the book's introduction renders its GPU column from that file; the test then removes
the file, and the column says "not measured" again.

Every answer and notebook class also runs on the meta device, where a tensor made on the CPU fails as on
a GPU: ``test_solution_models_stay_on_one_device`` in each chapter's tests (tests/chapters).
"""

import ast
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import jupytext
import pytest

from authoring import registry
from benchmarks import gpu_memory

REPO = pathlib.Path(__file__).resolve().parent.parent
CHAPTERS = [c.id for c in registry.chapters()]
TRAINED = {"03-vit", "04-deit", "06-mae", "08-registers"}  # chapters whose notebooks train with train.fit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gpu_command(tmp_path_factory):
    """(finished process, results folder): ``python -m benchmarks.gpu`` on the CPU with the step cap, writing
    into a copy of benchmarks/results (the book build running beside it reads the real one)."""
    results = tmp_path_factory.mktemp("results")
    shutil.copytree(REPO / "benchmarks" / "results", results, dirs_exist_ok=True)
    env = dict(os.environ, VITCOURSE_RESULTS=str(results), VITCOURSE_MAX_STEPS="1", HF_HUB_OFFLINE="1",
               VITCOURSE_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=3000)
    print(done.stdout[-3000:])
    return done, results


def test_every_notebook_runs_in_the_full_budget_with_a_step_cap(gpu_command):
    done, results = gpu_command
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
    result = json.loads((results / "gpu-cpu.json").read_text())
    assert (result["device"], result["budget"], result["max_steps"]) == ("cpu", "full", 1)
    assert list(result["chapters"]) == CHAPTERS
    for chapter, run in result["chapters"].items():
        assert run["passed"] and run["failed_cells"] == [], (chapter, run["failed_cells"])
        assert run["seconds"] > 0 and run["cpu_seconds"] > 0 and run["peak_host_memory_mb"] > 100, (chapter, run)
        assert run["peak_gpu_memory_mb"] is None and run["device"] == "cpu"
        fits = [m for m in run["metrics"] if "planned_steps" in m]  # the training loops' records (fit, train_student)
        assert fits or chapter not in TRAINED, (chapter, run["metrics"])  # each training run was reported
        assert all(m["steps"] == 1 < m["planned_steps"] for m in fits), fits  # the cap, the full budget's plan


def test_the_memory_estimate_counts_the_models_the_notebooks_train(gpu_command):
    """Each training workload of benchmarks/gpu_memory.py is a model its notebook trains in the full budget."""
    _, results = gpu_command
    result = json.loads((results / "gpu-cpu.json").read_text())
    for chapter in TRAINED & set(gpu_memory.WORKLOADS):
        trained = {m["parameters"] for m in result["chapters"][chapter]["metrics"] if "planned_steps" in m}
        for workload in (w for w in gpu_memory.WORKLOADS[chapter] if w.training):
            assert gpu_memory.trainable_parameters(workload) in trained, (chapter, workload.what, trained)


def test_the_memory_estimate_comes_first_against_a_colab_t4(gpu_command):
    done, _ = gpu_command
    before = done.stdout[:done.stdout.index("Running 9 solution notebook(s) with nbval")]
    assert "against a Colab T4's 15 GB" in before
    for chapter in CHAPTERS:
        row = re.search(rf"^{chapter}\s.*?(\d+) MB\s+(\d+)%", before, re.M)
        assert row and int(row[2]) < 90, f"{chapter}: no estimate, or too close to 15 GB:\n{before}"


def render(page: pathlib.Path, results: pathlib.Path, monkeypatch) -> str:
    """The HTML the page's last code cell displays, executed as the book build executes it (from book/),
    reading the result files of ``results``."""
    monkeypatch.setenv("VITCOURSE_RESULTS", str(results))
    monkeypatch.chdir(page.parent)
    namespace, shown = {}, None
    for cell in jupytext.read(page).cells:
        if cell.cell_type == "code":
            tree = ast.parse(cell.source)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, str(page), "exec"), namespace)
            if last is not None:
                shown = eval(compile(ast.Expression(last.value), str(page), "eval"), namespace)
    return shown.data


def test_the_introduction_shows_the_result_file_then_not_measured(gpu_command, monkeypatch):
    _, results = gpu_command
    result = json.loads((results / "gpu-cpu.json").read_text())
    html = render(REPO / "book" / "intro.md", results, monkeypatch)
    for chapter, run in result["chapters"].items():
        row = next(r for r in html.split("<tr>") if f"{registry.chapter(chapter).title}</td>" in r)
        assert row.endswith(f'<td style="text-align:right">{run["seconds"] / 60:.1f} min</td></tr>'), row
    assert "on cpu" in html and "capped at 1 steps" in html and "not measured" not in html

    (results / "gpu-cpu.json").unlink()
    html = render(REPO / "book" / "intro.md", results, monkeypatch)
    assert html.count(">not measured</td>") == len(CHAPTERS) and "GPU column: not measured yet" in html


def test_without_a_gpu_or_a_cap_the_command_says_what_to_do(monkeypatch, capsys):
    from benchmarks import gpu

    monkeypatch.delenv("VITCOURSE_MAX_STEPS", raising=False)
    assert gpu.main([]) == 2
    assert "No CUDA GPU here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu.main(["99-nothing"])
    assert "unknown chapter(s) ['99-nothing']" in capsys.readouterr().err

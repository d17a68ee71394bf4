"""Colab, as near as a test can get: a clean environment with Colab's preinstalled packages, the set-up
cell's own install, every student notebook answered and run from a folder outside the repository.

- The environment: a fresh virtual environment that holds only what Colab preinstalls and the course
  uses. Colab's published package list (googlecolab/backend-info, pip-freeze.txt) has torch,
  torchvision, numpy, matplotlib, scikit-learn, scikit-image, timm, tqdm, huggingface_hub,
  safetensors, PyYAML, pillow, ipykernel, notebook, jupyterlab_widgets and ipywidgets 7.7.1. Copying
  torch into a new environment costs gigabytes and minutes, so these packages (and what they require)
  are linked from this environment through a .pth file: pip in the new environment sees them
  installed, as on Colab, and cannot remove them (they lie outside it). ipywidgets 7.7.1 and its
  widgetsnbextension come from .venv/wheels (``python3.11 tasks.py env`` downloads them).
- The install: each notebook's set-up cell runs as on Colab (a kernel that has imported
  ``google.colab``), with its ``%pip`` line pointing at a ``git+file://`` clone of this tree tagged with
  the release, the way pip reads ``git+https://github.com/...@vX.Y.Z`` on Colab. pip works offline
  here (``--no-index``), so a dependency Colab lacks would fail the install.
- The run: the student notebook with the solution's answers pasted in, from a temporary folder, on
  the CPU: every cell must run, every graded cell pass. ``pip freeze`` before and after: nothing Colab
  preinstalled may change; the only new package is vitcourse.

Time per notebook (wall and CPU: the kernel and its pip) and the freeze comparison are printed and
written to artifacts/colab/report.json.
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import time
from importlib import metadata

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from authoring import registry
from autograder import cells

REPO = pathlib.Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "colab"
# What Colab preinstalls and the course uses (googlecolab/backend-info, pip-freeze.txt, 2026-08), except
# ipywidgets 7.7.1 and widgetsnbextension 3.6, installed from WHEELS.
PREINSTALLED = ["torch", "torchvision", "numpy", "matplotlib", "scikit-learn", "scikit-image", "timm", "tqdm",
                "huggingface_hub", "safetensors", "PyYAML", "pillow", "ipykernel", "notebook",
                "jupyterlab_widgets", "einops"]
FROM_WHEELS = ["ipywidgets==7.7.1", "widgetsnbextension==3.6.10", "ipython-genutils==0.2.0"]
WHEELS = pathlib.Path(os.environ.get("VITCOURSE_WHEELS", pathlib.Path(sys.prefix) / "wheels"))
# The kernel of a Colab runtime has imported google.colab before the first cell runs.
COLAB_STARTUP = "import sys, types\nsys.modules.setdefault('google.colab', types.ModuleType('google.colab'))\n"


def closure(names: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``names`` need, with everything they require (markers and extras
    evaluated)."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(name, "") for name in names]
    while todo:
        name, extra = todo.pop()
        name = canonicalize_name(name)
        if (name, extra) in done:
            continue
        done.add((name, extra))
        found[name] = dist = found.get(name) or metadata.distribution(name)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo += [(req.name, "")] + [(req.name, e) for e in req.extras]
    return found


def link_distributions(dists: dict[str, metadata.Distribution], dest: pathlib.Path) -> None:
    """Symlink each distribution's top-level files and its metadata folder into ``dest``."""
    dest.mkdir(parents=True)
    for dist in dists.values():
        site = pathlib.Path(dist.locate_file(""))
        tops = {pathlib.PurePath(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if (site / top).exists() and not (dest / top).exists():
                (dest / top).symlink_to(site / top)


def _run(*cmd, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def freeze(python: pathlib.Path, env: dict) -> dict[str, str]:
    lines = _run(python, "-m", "pip", "freeze", "--all", env=env).stdout.splitlines()
    out = {}
    for line in lines:
        name, _, version = line.partition("==") if "==" in line else line.partition(" @ ")
        out[canonicalize_name(name)] = version
    return out


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """A Colab-like environment: (python, environment variables for pip and the kernel, folder)."""
    missing = [w for w in FROM_WHEELS if not list(WHEELS.glob(f"{w.split('==')[0].replace('-', '_')}-*.whl"))]
    if missing:
        pytest.fail(f"{WHEELS} lacks the wheels of {missing}: run `python3.11 tasks.py env` (it downloads them)")
    root = tmp_path_factory.mktemp("colab")
    timings = {}
    start = time.perf_counter()
    _run(sys.executable, "-m", "venv", root / "venv")
    python = root / "venv" / "bin" / "python"
    # Python 3.11's venv brings its own old setuptools, which would hide Colab's (linked below).
    _run(python, "-m", "pip", "uninstall", "-q", "-y", "setuptools")
    site = pathlib.Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    link_distributions(closure(PREINSTALLED), root / "preinstalled")
    (site / "colab_preinstalled.pth").write_text(f"{root / 'preinstalled'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VITCOURSE_BUDGET", "PIP_FIND_LINKS")}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(WHEELS), PIP_CONFIG_FILE=os.devnull,
               PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1", HF_HUB_OFFLINE="1", VITCOURSE_OFFLINE="1")
    _run(python, "-m", "pip", "install", "-q", *FROM_WHEELS, env=env)
    timings["environment"] = time.perf_counter() - start
    startup = root / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text(COLAB_STARTUP)
    env["IPYTHONDIR"] = str(root / "ipython")
    spec = root / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))
    return python, env, root, timings


@pytest.fixture(scope="module")
def release_clone(tmp_path_factory):
    """This tree (the files git knows, as they are now) committed in a fresh repository and tagged
    with the release, as the course's repository is when students open the notebooks."""
    dest = tmp_path_factory.mktemp("course")
    listed = _run("git", "ls-files", "-co", "--exclude-standard", cwd=REPO).stdout.split()
    for rel in listed:
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    git = ["git", "-c", "user.name=course", "-c", "user.email=course@example.org"]
    _run(*git, "init", "-q", cwd=dest)
    _run(*git, "add", "-A", cwd=dest)
    _run(*git, "commit", "-qm", "release", cwd=dest)
    _run(*git, "tag", registry.info().tag, cwd=dest)
    return dest


def answered_notebook(chapter: registry.Chapter, clone: pathlib.Path) -> nbformat.NotebookNode:
    """The student notebook with the solution's answer cells pasted in and its install line pointing
    at the clone (``git+file://...@vX.Y.Z`` for ``git+https://github.com/...@vX.Y.Z``)."""
    student = nbformat.read(REPO / chapter.student_notebook, as_version=4)
    source = nbformat.read(REPO / chapter.source_notebook, as_version=4)
    answers = {cells.grade_id(c): c.source for c in source.cells if cells.kind(c) == "solution"}
    setup = next(c for c in student.cells if c.cell_type == "code")
    old, new = f"git+{registry.info().repository}@", f"git+file://{clone}@"
    assert old in setup.source, f"{chapter.id}: the set-up cell does not install from {old}"
    setup.source = setup.source.replace(old, new)
    for cell in student.cells:
        if cells.kind(cell) == "solution":
            cell.source = answers[cells.grade_id(cell)]
    return student


def _children_cpu() -> float:
    """CPU seconds used by finished child processes (kernels and what they ran) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _errors(nb) -> list[str]:
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                where = f"graded cell {cells.grade_id(cell)}" if cells.kind(cell) == "test" else f"cell {i}"
                found.append(f"{where}: {out['ename']}: {out['evalue'][:300]}")
    return found


@pytest.mark.slow
def test_a_failed_install_stops_the_notebook_in_one_sentence(colab, release_clone, tmp_path, monkeypatch):
    """A wrong address (or no network): the set-up cell stops the run with one sentence, and no later
    cell runs into a NameError."""
    python, env, root, _ = colab
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "vitcourse"], env=env, capture_output=True)
    nb = answered_notebook(registry.chapters()[0], release_clone)
    index, setup = next((i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code")
    setup.source = setup.source.replace(f"git+file://{release_clone}@", f"git+file://{tmp_path / 'nowhere'}@")
    monkeypatch.setattr(os, "environ", dict(env, JUPYTER_PATH=str(root / "jupyter")))
    with pytest.raises(CellExecutionError) as stopped:
        NotebookClient(nb, kernel_name="colab", timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    error = next(o for o in setup.outputs if o.output_type == "error")
    assert error.ename == "SystemExit" and error.evalue.startswith("The course library is not installed"), error
    assert "NameError" not in str(stopped.value)
    assert not any(c.get("outputs") for c in nb.cells[index + 1:] if c.cell_type == "code")


@pytest.mark.slow
def test_every_notebook_runs_in_a_colab_like_environment(colab, release_clone, tmp_path, monkeypatch):
    python, env, root, timings = colab
    before = freeze(python, env)
    assert "ipywidgets" in before and before["ipywidgets"] == "7.7.1" and "torch" in before, before
    assert "vitcourse" not in before
    monkeypatch.setattr(os, "environ", dict(env, JUPYTER_PATH=str(root / "jupyter")))
    work = tmp_path / "work"  # outside the repository: Colab has no checkout
    work.mkdir()
    problems = {}
    cpu = {}
    for chapter in registry.chapters():
        nb = answered_notebook(chapter, release_clone)
        start, used = time.perf_counter(), _children_cpu()
        NotebookClient(nb, kernel_name="colab", timeout=600, allow_errors=True,
                       resources={"metadata": {"path": str(work)}}).execute()
        timings[chapter.id] = time.perf_counter() - start
        cpu[chapter.id] = _children_cpu() - used  # the kernel and the pip it ran
        nbformat.write(nb, work / f"{chapter.id}.ipynb")
        if errors := _errors(nb):
            problems[chapter.id] = errors
    after = freeze(python, env)
    changed = {name: (version, after.get(name)) for name, version in before.items() if after.get(name) != version}
    added = sorted(set(after) - set(before))
    report = {"seconds": {k: round(v, 1) for k, v in timings.items()},
              "cpu_seconds": {k: round(v, 1) for k, v in cpu.items()}, "preinstalled": before,
              "changed": changed, "added": {name: after[name] for name in added}}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("seconds", "cpu_seconds", "changed", "added")}, indent=1))
    assert not problems, json.dumps(problems, indent=1)
    assert not changed, f"the set-up cells changed preinstalled packages: {changed}"
    assert added == ["vitcourse"], f"the set-up cells installed more than the course: {added}"


EXPLORER = """
import ipywidgets
from vitcourse import data, widgets
assert ipywidgets.__version__ == "7.7.1", ipywidgets.__version__
box = widgets.patch_explorer(data.photo("chelsea", 64), resolutions=(64, 128), patch_sizes=(8, 16))
(size, patch), label, picture = box.children[0].children, box.children[1], box.children[2]
before = label.value, bytes(picture.value)
size.value = 128
assert "128x128 px" in label.value and bytes(picture.value) != before[1], (before[0], label.value)
patch.value = 8
assert "16x16 grid" in label.value, label.value
print("explorer works with ipywidgets", ipywidgets.__version__)
"""


@pytest.mark.slow
def test_the_explorer_works_with_colabs_ipywidgets(colab, release_clone):
    """Moving a slider of the patch explorer redraws its picture and its numbers, with ipywidgets 7.7.1."""
    python, env, root, _ = colab
    done = _run(python, "-c", EXPLORER, env=dict(env, PYTHONPATH=str(release_clone / "src"), MPLBACKEND="Agg"),
                cwd=root)
    assert "explorer works with ipywidgets 7.7.1" in done.stdout

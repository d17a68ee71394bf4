"""The grading tool is installed with the package: its modules are in the wheel, with an ``autograder``
console script. The wheel is built from a copy of the tree into a temporary folder and unpacked
there; the shared environment is never touched."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from authoring import registry

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md", "course.toml"):
        shutil.copy(REPO / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("src", "autograder", "authoring"):  # authoring/ sits beside them and must stay out
        shutil.copytree(REPO / folder, tree / folder, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return next(out.glob("vitcourse-*.whl"))


def test_wheel_holds_the_grader_and_its_console_script(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    modules = {p.name for p in (REPO / "autograder").glob("*.py")}
    assert {f"autograder/{m}" for m in modules} <= names
    assert "vitcourse/models/vit.py" in names and not any(n.startswith("tests/") for n in names)
    assert "[console_scripts]" in entry_points and "autograder = autograder.cli:main" in entry_points


def test_wheel_holds_the_library_without_the_authoring_side(wheel, tmp_path):
    """Students install the library and its release (version.py), not the registry or the authoring steps;
    the installed library still knows where a notebook of its release installs it from."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert "vitcourse/version.py" in names
    assert not any(n.startswith("authoring/") or n.endswith("course.toml") or n == "vitcourse/course.py" for n in names)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path),
                           str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    code = "import vitcourse, vitcourse.version as v; print(vitcourse.__version__, v.install_url(), vitcourse.__file__)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                           env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    version, url, where = shown.stdout.split()
    assert (version, url) == (registry.info().version, registry.info().install_url), shown.stderr
    assert where.startswith(str(tmp_path))


def test_console_script_runs_from_the_wheel(wheel, tmp_path):
    """Installed into a private folder, the script imports the grader from the wheel, not the tree."""
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path),
                           str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    script = tmp_path / "bin" / "autograder"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    shown = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, env=env,
                           cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "grade" in shown.stdout and "merge" in shown.stdout
    where = subprocess.run([sys.executable, "-c", "import autograder; print(autograder.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.stdout.startswith(str(tmp_path))
    # a command that fails says why in one line and exits with status 2, without a traceback
    failed = subprocess.run([sys.executable, str(script), "-w", str(tmp_path / "nowhere"), "export"],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "is not a grading workspace" in failed.stderr and "autograder init" in failed.stderr

"""The course's commands. Needs only Python 3.11; creates .venv on first use.

    python3.11 tasks.py book                 build the book into _build/html
    python3.11 tasks.py test                 the whole test suite (extra arguments go to pytest); as root it
                                             first installs the Debian packages some tests need
    python3.11 tasks.py test --fast          library, layout, tools and lint: no notebooks, no site
    python3.11 tasks.py test --chapter ID    every test of a chapter: notebook, library, grading, pages
                                             (e.g. 03-vit; repeatable; marked from course.toml)
    python3.11 tasks.py lint                 ruff on the whole tree
    python3.11 tasks.py sync [--check]       regenerate everything derived: set-up cells, solution .ipynb
                                             from their .py sources, notebooks/ (the release), _toc.yml,
                                             the intro's list of chapters, versions ...
    python3.11 tasks.py configure --repository URL [--branch B]
                                             run the course from your own repository (then sync)
    python3.11 tasks.py release [ID ...]     regenerate notebooks/ from solutions/ with nbgrader
    python3.11 tasks.py new ID "Title" MODULE   scaffold a chapter (e.g. 09-vlm "A ViT in a VLM" vlm)
    python3.11 tasks.py gpu [ID ...]         on a GPU: every solution notebook in the full budget, measured
                                             (benchmarks/results/gpu-<device>.json; see benchmarks/gpu.py)
    python3.11 tasks.py env                  only create or update the environment

The course's chapters, repository and version live in course.toml; the authoring steps (sync, release,
configure, new) are the package authoring/ (`python -m authoring`). The environment is
reinstalled when pyproject.toml changes; versions live there (the `dev` extra), and environment.yml
installs the same extra for conda users.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".installed"
# Wheels for the Colab-like test (tests/test_colab.py), which installs offline: Colab's ipywidgets 7 and
# what it brings, and the build backend pip needs to install the course from a git URL.
COLAB_WHEELS = ("ipywidgets==7.7.1", "widgetsnbextension==3.6.10", "ipython-genutils==0.2.0", "setuptools==84.2.1")
WHEELS = VENV / "wheels"
VENV_GB = 7  # the size of .venv once installed, measured with du -sh
# Debian packages that tests need beyond Python: name -> (a path that exists once it is installed, why).
SYSTEM_PACKAGES = {
    "chromium": ("/usr/bin/chromium", "the site test opens every page in headless Chromium"),
    "postgresql": ("/usr/lib/postgresql/*/bin/initdb", "the shared-gradebook test starts a PostgreSQL server"),
}


def run(*cmd: str | os.PathLike, **kwargs) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    done = subprocess.run([str(c) for c in cmd], cwd=ROOT, **kwargs)
    if done.returncode:
        sys.exit(done.returncode)


def env() -> None:
    """Create .venv and install this repository with its `dev` extra when missing or stale; download the
    Colab-like test's wheels into .venv/wheels."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + repr(COLAB_WHEELS).encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PY.exists():
        return
    if sys.version_info[:2] != (3, 11):
        print(f"note: this is Python {sys.version.split()[0]}; the course is tested on 3.11", flush=True)
    if not PY.exists():
        print(f"creating {VENV.name}/ ...", flush=True)
        if (free := shutil.disk_usage(ROOT).free / 2**30) < VENV_GB:
            print(f"warning: {free:.1f} GB free under {ROOT}, and {VENV.name}/ takes about {VENV_GB} GB", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip("install", "--quiet", "-e", ".[dev]")
    run(PY, "-m", "ipykernel", "install", "--prefix", VENV, "--name", "python3", stdout=subprocess.DEVNULL)
    pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", str(WHEELS), *COLAB_WHEELS)
    STAMP.write_text(wanted)


def pip(*args: str) -> None:
    """pip in .venv; keeps its errors, drops its notes about package index folders this machine lacks."""
    cmd = [str(PY), "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    print("".join(line for line in done.stderr.splitlines(True) if "is ignored" not in line), end="", file=sys.stderr)
    if done.returncode:
        if "No space left on device" in done.stderr:
            free = shutil.disk_usage(ROOT).free / 2**30
            print(f"error: the disk is full ({free:.1f} GB free under {ROOT}). {VENV.name}/ needs about {VENV_GB} GB "
                  f"(torch brings its CUDA libraries): free some space, remove the half-made {VENV.name}/, and run "
                  "the command again.", file=sys.stderr)
        sys.exit(done.returncode)


def book(*args: str) -> None:
    env()
    run(PY, "-m", "authoring", "vendor-assets", "--check")
    run(BIN / "jupyter-book", "build", "--all", "-W", "-n", "--keep-going", *args, ".")
    print(f"\nThe book is in {ROOT / '_build' / 'html' / 'index.html'}")


def test(*args: str) -> None:
    """pytest, with two shortcuts: ``--fast`` (no slow tests) and ``--chapter ID`` (passed through). The
    whole suite first gets the Debian packages its tests need (``provide_system_packages``)."""
    env()
    args = list(args)
    if "--fast" in args:
        args.remove("--fast")
        args = ["-m", "not slow and not browser", *args]
    elif "--chapter" not in args:
        provide_system_packages()
    run(PY, "-m", "pytest", *args)


def missing_system_packages() -> list[str]:
    return [name for name, (path, _) in SYSTEM_PACKAGES.items() if not glob.glob(path)]


def provide_system_packages() -> None:
    """Install the missing ``SYSTEM_PACKAGES`` with apt-get when running as root (CI, containers); elsewhere
    print one line with the command and why. The tests that need a missing one are skipped, and pytest's
    summary lists them."""
    missing = missing_system_packages()
    if not missing:
        return
    why = "; ".join(SYSTEM_PACKAGES[name][1] for name in missing)
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if getattr(os, "geteuid", lambda: -1)() == 0 and shutil.which("apt-get"):
        print(f"+ {' '.join(command)}  ({why})", flush=True)
        quiet = dict(stdout=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if subprocess.run(["apt-get", "update", "-qq"], **quiet).returncode == 0 and \
                subprocess.run(command, **quiet).returncode == 0:
            return
        print(f"note: apt-get could not install {' '.join(missing)}; the tests that need it are skipped", flush=True)
    else:
        print(f"note: {why}; install with `sudo apt-get install -y {' '.join(missing)}`, or those tests are "
              "skipped", flush=True)


def lint(*args: str) -> None:
    env()
    run(PY, "-m", "ruff", "check", *args, ".")


def sync(*args: str) -> None:
    """Everything derived, in order: registry-derived files (set-up cells included), solution notebooks,
    the release."""
    authoring("sync", *args)


def configure(*args: str) -> None:
    """Set the course's repository (``--repository URL [--branch B] [--site URL]``), then sync."""
    authoring("configure", *args)


def release(*args: str) -> None:
    authoring("release", *args)


def new(*args: str) -> None:
    authoring("new", *args)


def authoring(step: str, *args: str) -> None:
    """One step of the authoring pipeline (``python -m authoring STEP``)."""
    env()
    run(PY, "-m", "authoring", step, *args)


def gpu(*args: str) -> None:
    """Every solution notebook in the full budget on this machine's GPU: times, memory, metrics."""
    env()
    run(PY, "-m", "benchmarks.gpu", *args)


COMMANDS = {"env": env, "book": book, "test": test, "lint": lint, "sync": sync, "release": release, "new": new,
            "configure": configure, "gpu": gpu}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    COMMANDS[sys.argv[1]](*sys.argv[2:])

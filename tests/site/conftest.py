"""The site, built once per test run from a clean build directory, as CI builds it."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """Build the book with warnings as errors into a fresh directory; returns the html folder.

    The executed reading chapters are cached in _build/.jupyter_cache; a fresh clone has no cache,
    so CI always executes them.
    """
    out = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "authoring", "vendor-assets", "--check"], cwd=REPO, check=True)
    cmd = [str(pathlib.Path(sys.executable).with_name("jupyter-book")), "build", "--all", "-W", "-n",
           "--keep-going", "--path-output", str(out), "."]
    env = dict(os.environ, PATH=os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ["PATH"]]))
    env.pop("MPLBACKEND", None)  # the suite sets Agg; the book's kernels need the inline backend
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=1800)
    log = done.stdout + done.stderr
    (out / "build.log").write_text(log)
    assert done.returncode == 0, "jupyter-book build failed:\n" + log[-6000:]
    return out / "_build" / "html"

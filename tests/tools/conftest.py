"""A copy of the tree for tests that run the authoring steps on it (scaffold, configure)."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The files git knows, as they are now, copied into a temporary folder (never the repository)."""
    dest = tmp_path_factory.mktemp("course")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.split()
    for rel in listed:
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


@pytest.fixture(scope="module")
def run_in(tree):
    """``run_in(*cmd)``: ``python *cmd`` in the copied tree, with its own src/ and authoring package on the
    path (``env`` overrides variables of the environment)."""

    def run(*cmd, timeout=900, env=None):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "src"), str(tree)]), **(env or {})}
        return subprocess.run([sys.executable, *cmd], cwd=tree, env=env, capture_output=True, text=True,
                              timeout=timeout)

    return run

"""The README's test command provides what its tests need: Debian's Chromium and PostgreSQL.

As root (CI, containers) ``tasks.py test`` installs the missing packages with apt-get; elsewhere it prints
one line with the command and why. A test whose package is still missing is skipped (failed under CI)
and the run's summary lists it. ``.ci/run`` is the README's command and nothing more.
"""

import pathlib
import re
import subprocess
from types import SimpleNamespace

import pytest

import tasks

import system_packages

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def nothing_installed(monkeypatch):
    monkeypatch.setattr(tasks.glob, "glob", lambda pattern: [])
    calls = []
    monkeypatch.setattr(tasks.subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)) or SimpleNamespace(returncode=0))
    return calls


def test_as_root_the_missing_packages_are_installed(nothing_installed, monkeypatch, capsys):
    monkeypatch.setattr(tasks.os, "geteuid", lambda: 0)
    monkeypatch.setattr(tasks.shutil, "which", lambda name: f"/usr/bin/{name}")
    tasks.provide_system_packages()
    commands = [cmd for cmd, _ in nothing_installed]
    assert commands == [["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "postgresql"]]
    assert all(kw["env"]["DEBIAN_FRONTEND"] == "noninteractive" for _, kw in nothing_installed)
    assert "headless Chromium" in capsys.readouterr().out


def test_elsewhere_one_line_says_how_and_why(nothing_installed, monkeypatch, capsys):
    monkeypatch.setattr(tasks.os, "geteuid", lambda: 1000)
    tasks.provide_system_packages()
    out = capsys.readouterr().out.splitlines()
    assert nothing_installed == [] and len(out) == 1
    assert "sudo apt-get install -y chromium postgresql" in out[0] and "PostgreSQL server" in out[0]


def test_a_failed_install_is_said_and_the_tests_go_on(monkeypatch, capsys):
    monkeypatch.setattr(tasks.glob, "glob", lambda pattern: [] if "chromium" in pattern else ["/usr/lib/initdb"])
    monkeypatch.setattr(tasks.os, "geteuid", lambda: 0)
    monkeypatch.setattr(tasks.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(tasks.subprocess, "run", lambda cmd, **kw: SimpleNamespace(returncode=100))
    tasks.provide_system_packages()
    assert "could not install chromium" in capsys.readouterr().out


@pytest.mark.parametrize("args,provides", [((), True), (("--fast",), False), (("--chapter", "03-vit"), False),
                                           (("tests/site",), True)])
def test_the_suite_provides_what_its_tests_need(monkeypatch, args, provides):
    provided, ran = [], []
    monkeypatch.setattr(tasks, "env", lambda: None)
    monkeypatch.setattr(tasks, "provide_system_packages", lambda: provided.append(True))
    monkeypatch.setattr(tasks, "run", lambda *cmd, **kw: ran.append(cmd))
    tasks.test(*args)
    assert bool(provided) == provides and ran[0][1:3] == ("-m", "pytest")


def test_a_test_without_its_package_is_skipped_and_fails_under_ci(monkeypatch):
    monkeypatch.setitem(tasks.SYSTEM_PACKAGES, "chromium", ("/nowhere/chromium", "the site test opens every page"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{system_packages.MISSING} chromium: the site test opens"):
        system_packages.require("chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="sudo apt-get install -y chromium"):
        system_packages.require("chromium")


class _Terminal:
    def __init__(self, skipped):
        self.stats, self.lines = {"skipped": skipped}, []

    def section(self, title, **kwargs):
        self.lines.append(title)

    def line(self, text, **kwargs):
        self.lines.append(text)


def test_the_summary_names_the_tests_that_could_not_run():
    reason = f"Skipped: {system_packages.MISSING} postgresql: the shared-gradebook test starts a PostgreSQL server"
    skipped = [SimpleNamespace(nodeid="tests/autograder/test_postgres.py::test_graders", longrepr=("f", 1, reason)),
               SimpleNamespace(nodeid="tests/library/test_vlm.py::test_hf", longrepr=("f", 1, "Skipped: no transformers"))]
    terminal = _Terminal(skipped)
    system_packages.summarise_missing(terminal)
    assert terminal.lines == ["tests that could not run",
                              f"1 test(s) in tests/autograder/test_postgres.py: {reason.removeprefix('Skipped: ')}"]
    quiet = _Terminal(skipped[1:])
    system_packages.summarise_missing(quiet)
    assert quiet.lines == []


def test_ci_runs_the_readme_command_and_nothing_more():
    readme = (REPO / "README.md").read_text()
    assert "python3.11 tasks.py test    # run the whole test suite" in readme
    lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    commands = [line for line in lines if not re.match(r"(set -euo pipefail|cd |start=|echo \"CI finished)", line)]
    assert commands == ["python3.11 tasks.py test"], lines
    assert subprocess.run(["bash", "-n", str(REPO / ".ci" / "run")]).returncode == 0

"""Tests that need a Debian package (``tasks.SYSTEM_PACKAGES``: Chromium, PostgreSQL) find it here.

``python3.11 tasks.py test`` installs the missing ones when it runs as root (CI, containers) and says
how elsewhere. A test whose package is still missing is skipped with a reason that starts with
``MISSING``; the summary at the end of the run lists those tests (conftest.py). Under CI, which must run
every test, it fails instead.
"""

import glob
import os

import pytest

import tasks

MISSING = "missing Debian package"


def require(name: str) -> str:
    """The installed path of package ``name`` (the newest if several match), or skip (fail under CI)."""
    pattern, why = tasks.SYSTEM_PACKAGES[name]
    found = sorted(glob.glob(pattern))
    if found:
        return found[-1]
    message = (f"{MISSING} {name}: {why}; `python3.11 tasks.py test` installs it when run as root, or "
               f"`sudo apt-get install -y {name}`")
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def summarise_missing(terminalreporter) -> None:
    """The end of a run (conftest.py's ``pytest_terminal_summary``): the tests skipped for a missing package,
    by reason."""
    reasons: dict[str, list[str]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if MISSING in reason:
            reasons.setdefault(reason.removeprefix("Skipped: "), []).append(report.nodeid)
    if reasons:
        terminalreporter.section("tests that could not run", sep="=", yellow=True, bold=True)
        for reason, nodeids in reasons.items():
            files = sorted({n.split("::")[0] for n in nodeids})
            terminalreporter.line(f"{len(nodeids)} test(s) in {', '.join(files)}: {reason}", yellow=True)

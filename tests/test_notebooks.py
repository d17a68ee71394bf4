"""Every chapter, as nbgrader sees it.

- the student notebooks in notebooks/ are exactly what `python3.11 tasks.py release` generates from solutions/;
- sources are stored without outputs, releases carry no solution or hidden test;
- every set-up cell installs the course from the one repository URL in _config.yml, pinned to the
  release's tag.

Each solution runs in-process, cell by cell, in tests/chapters (every ungraded cell must run without
error there, every graded cell pass on ten seeds); the real nbgrader grades it (full marks) and the
release (0 points) in tests/autograder/test_robustness.py, and the Colab-like test runs every student
notebook with the answers pasted in (tests/test_colab.py).
"""

import json
import pathlib
import re

import pytest
import yaml

from authoring import registry, release

REPO = pathlib.Path(__file__).resolve().parent.parent
CHAPTERS = [c.id for c in registry.chapters()]


def test_releases_in_sync_with_solutions():
    problems = release.differences()
    assert not problems, "\n".join(problems) + "\nRun `python3.11 tasks.py release` and commit notebooks/."


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_source_is_stored_cleared(chapter):
    nb = json.loads((REPO / "solutions" / chapter / f"{chapter}.ipynb").read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"cells {dirty} have outputs; clear them (solutions/ is stored without outputs)"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_release_has_no_solution_or_hidden_test(chapter):
    text = (REPO / "notebooks" / chapter / f"{chapter}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS"):
        assert marker not in text


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_setup_cell_installs_from_the_one_repository_url(chapter):
    url = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    nb = json.loads((REPO / "solutions" / chapter / f"{chapter}.ipynb").read_text())
    setup = next(c for c in nb["cells"] if c["cell_type"] == "code")
    source = "".join(setup["source"])
    installs = re.findall(r'%pip install -q "git\+(\S+?)@(\S+?)"', source)
    wanted = [(url, registry.info().tag)]
    assert installs == wanted, f"set-up cell of {chapter} should install {wanted} (repository, tag), found {installs}"
    assert "env.budget()" in source and "env.device()" in source

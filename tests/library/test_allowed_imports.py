"""What students may import: one list (``vitcourse.env.ALLOWED_IMPORTS``), promised in every chapter's
introduction, installed wherever the course is (the grader runs in this package's environment)."""

import ast
import importlib
import pathlib
import re
import sys

import nbformat
import pytest

from authoring import registry
from autograder import cells
from vitcourse import env

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHAPTERS = [c.id for c in registry.chapters()]


def _words(text: str) -> str:
    return " ".join(text.split())


def test_the_sentence_names_every_allowed_module():
    sentence = env.allowed_imports_sentence()
    assert re.findall(r"`([a-z_]+)`", sentence) == list(env.ALLOWED_IMPORTS)
    assert "standard library" in sentence


@pytest.mark.parametrize("module", env.ALLOWED_IMPORTS)
def test_the_grading_environment_imports_every_promised_module(module):
    importlib.import_module(module)


def test_the_package_depends_on_every_promised_module():
    """A fresh install of vitcourse (Colab, the grader) brings every module the notebooks promise."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    required = {re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    missing = [m for m in env.ALLOWED_IMPORTS if m not in required]
    assert not missing, f"add {missing} to [project] dependencies in pyproject.toml"


@pytest.mark.parametrize("chapter", CHAPTERS)
@pytest.mark.parametrize("kind", ["source_notebook", "release"])
def test_every_introduction_says_what_may_be_imported(chapter, kind):
    ch = registry.chapter(chapter)
    path = ROOT / (ch.source_notebook if kind == "source_notebook" else f"notebooks/{ch.id}/{ch.id}.ipynb")
    nb = nbformat.read(path, as_version=4)
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    intro = " ".join(c.source for c in nb.cells[:first_code])  # the title cell and the stamped rules
    assert nb.cells[0].cell_type == "markdown", f"{path.name}: the first cell must be the introduction"
    assert _words(env.allowed_imports_sentence()) in _words(intro), (
        f"{path.relative_to(ROOT)}: the introduction must say, in these words, what students may import: "
        f"{env.allowed_imports_sentence()!r} (vitcourse.env.allowed_imports_sentence())"
    )


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_solutions_import_only_what_students_may(chapter):
    """The solution's answer cells keep to the promise: standard library, the allowed modules, vitcourse."""
    nb = nbformat.read(ROOT / registry.chapter(chapter).source_notebook, as_version=4)
    allowed = set(sys.stdlib_module_names) | set(env.ALLOWED_IMPORTS) | {"vitcourse"}
    used = set()
    for cell in nb.cells:
        if cells.kind(cell) != "solution":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                used |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                used.add(node.module.split(".")[0])
    assert used <= allowed, f"answer cells of {chapter} import {sorted(used - allowed)}"

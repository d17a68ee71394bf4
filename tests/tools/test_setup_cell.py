"""The set-up cell every chapter shares: stamped from the registry, valid Python as text, and it behaves
on Colab, with another release installed, and when the install failed."""

import ast
import contextlib
import dataclasses
import io
import json
import sys

import pytest
from IPython.core.inputtransformer2 import TransformerManager

import vitcourse
from authoring import derived, registry, setup_cell

CHAPTERS = registry.chapters()
ROOT = derived.ROOT


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.id)
def test_source_is_stamped_and_valid_python(chapter):
    text = (ROOT / chapter.source).read_text()
    assert setup_cell.stamp(text, chapter) == text
    ast.parse(text)  # jupytext comments out %pip: the `if` block keeps a real statement
    info = registry.info()
    assert f'# %pip install -q "{info.install_url}"' in text
    assert f"]({info.site_url}{chapter.page_html})" in text


def test_a_stale_stamp_is_reported(monkeypatch):
    real = registry.info()
    other = dataclasses.replace(real, version="0.0.1", repository="https://github.com/someone/else")
    monkeypatch.setattr(registry, "info", lambda: other)
    assert set(derived.sync(check=True)) >= {c.source for c in CHAPTERS}
    text = (ROOT / CHAPTERS[0].source).read_text()
    restamped = setup_cell.stamp(text, CHAPTERS[0], other)
    assert 'git+https://github.com/someone/else@v0.0.1"' in restamped and "someone.github.io/else/" in restamped
    assert setup_cell.stamp(restamped, CHAPTERS[0], real) == text


def test_a_source_without_the_set_up_head_is_refused():
    with pytest.raises(ValueError, match="must start with the course's set-up lines"):
        setup_cell.stamp("# %% [markdown]\n# # Title\n\n# %%\nimport torch\n", CHAPTERS[0])


def _setup_head() -> str:
    """The set-up cell of chapter 1 as a notebook holds it (magic uncommented), up to the version check."""
    nb = json.loads((ROOT / CHAPTERS[0].source_notebook).read_text())
    source = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    head = source[:source.index(setup_cell.CHECK_CALL)]
    return head + source[len(head):].split("\n", 1)[0] + "\n"


class _IPython:
    def __init__(self):
        self.magics = []

    def run_line_magic(self, name, line):
        self.magics.append((name, line))


def _run_head(monkeypatch, colab: bool):
    shell = _IPython()
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(TransformerManager().transform_cell(_setup_head()), {"get_ipython": lambda: shell})
    return shell.magics, out.getvalue()


def test_outside_colab_nothing_is_installed(monkeypatch):
    magics, out = _run_head(monkeypatch, colab=False)
    assert magics == [] and out == ""


def test_on_colab_the_release_is_installed(monkeypatch):
    magics, out = _run_head(monkeypatch, colab=True)
    assert magics == [("pip", f'install -q "{registry.info().install_url}"')]
    assert out.strip() == f"Installing the course library vitcourse {registry.info().version} ..."


def test_a_failed_install_stops_with_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "vitcourse", None)  # `import vitcourse` fails, as after a failed install
    with pytest.raises(SystemExit) as stop:
        _run_head(monkeypatch, colab=True)
    message = str(stop.value)
    assert message.startswith("The course library is not installed") and message.count(". ") == 0
    assert registry.info().install_url in message


def test_another_release_is_named_in_one_line(monkeypatch):
    monkeypatch.setattr(vitcourse, "__version__", "9.9.9")
    _, out = _run_head(monkeypatch, colab=False)
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "9.9.9 is installed" in lines[0] and registry.info().version in lines[0]
    assert "Restart session" in lines[0]


def test_version_and_install_url_come_from_the_registry():
    from vitcourse import version

    assert vitcourse.__version__ == version.VERSION == registry.info().version
    assert version.install_url() == registry.info().install_url

"""Notebook sources are jupytext text files; the .ipynb beside each is generated from it."""

import nbformat
import pytest

from authoring import notebooks

SOURCES = notebooks.sources()


def test_there_are_sources():
    assert len(SOURCES) >= 8


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_text_round_trip_keeps_every_cell(source, tmp_path):
    """Pulling the generated .ipynb back to text gives the same notebook again."""
    nb = notebooks.read_source(source)
    copy = tmp_path / source.with_suffix(".ipynb").name
    copy.write_text(notebooks.dumps(nb))
    again = notebooks.read_source(notebooks.pull(copy))
    assert notebooks.dumps(again) == notebooks.dumps(nb)


def test_graded_cells_keep_their_nbgrader_metadata():
    nb = notebooks.read_source(notebooks.ROOT / "solutions/01-patches/01-patches.py")
    checks = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"]["solution"]]
    assert checks and all(c.metadata["nbgrader"]["locked"] for c in checks)  # written answers are graded, not locked
    assert [c.id for c in nb.cells[:2]] == ["cell-000", "cell-001"]


def test_a_grade_id_used_twice_is_named(tmp_path):
    text = ('# %% nbgrader={"grade": false, "grade_id": "f", "solution": true, "locked": false, '
            '"schema_version": 3, "task": false}\nx = 1\n\n'
            '# %% nbgrader={"grade": true, "grade_id": "f", "solution": false, "locked": true, '
            '"points": 1, "schema_version": 3, "task": false}\nassert x\n')
    path = tmp_path / "01-x.py"
    path.write_text(text)
    with pytest.raises(ValueError, match="grade id 'f' is used by cells 0 and 1"):
        notebooks.read_source(path)


def test_stale_notebook_is_reported_then_written(tmp_path, monkeypatch):
    source = tmp_path / "solutions" / "01-x" / "01-x.py"
    source.parent.mkdir(parents=True)
    source.write_text("# %% [markdown]\n# # A title\n\n# %%\nx = 1\n")
    monkeypatch.setattr(notebooks, "ROOT", tmp_path)
    assert notebooks.sync([source], check=True) == ["solutions/01-x/01-x.ipynb"]
    assert not source.with_suffix(".ipynb").exists()
    assert notebooks.sync([source]) == ["solutions/01-x/01-x.ipynb"]
    assert notebooks.sync([source], check=True) == []
    assert nbformat.read(source.with_suffix(".ipynb"), as_version=4).cells[1].source == "x = 1"

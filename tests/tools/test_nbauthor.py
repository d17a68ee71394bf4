import json
import pathlib

import pytest

from tools import nbauthor

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_text_round_trip_of_every_solution():
    for path in sorted((REPO / "solutions").glob("*/*.ipynb")):
        nb = nbauthor.build(nbauthor.dump(json.loads(path.read_text(), object_hook=_node)))
        again = nbauthor.dump(nb)
        assert again == nbauthor.dump(nbauthor.build(again))


def _node(d):
    import nbformat

    return nbformat.NotebookNode(d)


def test_metadata_of_graded_cells():
    nb = nbauthor.build("%% md\n# t\n%% solution f\nx = 1\n%% test test_f 3\nassert x == 1\n")
    solution, test = nb.cells[1].metadata["nbgrader"], nb.cells[2].metadata["nbgrader"]
    assert solution["solution"] and not solution["grade"] and solution["grade_id"] == "f"
    assert test["grade"] and test["locked"] and test["points"] == 3


@pytest.mark.parametrize("text,match", [
    ("%% solution\nx = 1\n", "grade id"),
    ("%% test a 1\npass\n%% test a 1\npass\n", "used twice"),
    ("%% chart\n", "unknown cell kind"),
])
def test_bad_text_is_named(text, match):
    with pytest.raises(ValueError, match=match):
        nbauthor.build(text)

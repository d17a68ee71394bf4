"""The course registry (course.toml) and the tree agree, by the layout rules of ``authoring.layout``.

- every registered chapter has all its parts (text source, generated source notebook, student
  notebook, reading page, tests, bugs and alternatives, reference module) and its headings announce
  the points its graded cells hold;
- no chapter folder or page exists outside the registry;
- the files derived from the registry (table of contents, _config.yml's repository, the package
  version, the intro's list of chapters, the README's count, each source's set-up stamp) and the
  .ipynb generated from each text source are up to date.
"""

import pytest

from authoring import derived, layout, notebooks, registry

CHAPTERS = registry.chapters()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.id)
def test_chapter_has_every_part(chapter):
    assert layout.problems(chapter) == []


def test_no_chapter_outside_the_registry():
    assert layout.unregistered() == []


def test_derived_files_are_up_to_date():
    assert derived.sync(check=True) == [], "run `python3.11 tasks.py sync`"


def test_every_source_notebook_is_generated_from_its_text():
    assert notebooks.sync(notebooks.sources(), check=True) == [], "run `python3.11 tasks.py sync`"


def test_intro_lists_the_chapters_in_order():
    """The intro's list is derived (test_derived_files_are_up_to_date); here: it holds every title, in order."""
    intro = derived.intro((layout.ROOT / f"{registry.book()['root']}.md").read_text())
    positions = [intro.index(f"{c.number}. **{c.title}** — ") for c in CHAPTERS]
    assert positions == sorted(positions)


def test_points_announced_in_headings_must_match(tmp_path):
    """The check itself can fail: a heading that announces 3 points over a 4-point cell."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("### Exercise 1 — `f` (3 points)"),
                nbformat.v4.new_code_cell("assert True")]
    nb.cells[1].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 4}
    assert layout.announced_points(nb) == ["heading 'Exercise 1 — `f` (3 points)' announces 3 points, "
                                           "its graded cells hold 4"]
    nb.cells[0].source = "### Exercise 1 — `f`"
    assert "announces none" in layout.announced_points(nb)[0]


def test_written_points_are_announced_in_the_question_not_its_heading():
    """A heading's "(N points)" counts graded code cells; a written answer's points are in the question."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("### Question 1 — why?\n\n*Written answer, 2 points, scored by your "
                                              "instructor.*\n\nExplain."),
                nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nBecause.\n### END SOLUTION")]
    nb.cells[1].metadata["nbgrader"] = {"grade": True, "solution": True, "grade_id": "q_why", "points": 2}
    assert layout.announced_points(nb) == []
    nb.cells[1].metadata["nbgrader"]["points"] = 3
    assert layout.announced_points(nb) == ["under 'Question 1 — why?' the text announces 2 points of written "
                                           "answers, its answer cells hold 3: write 'Written answer, 3 points' "
                                           "in the question"]
    nb.cells[0].source = "### Question 1 — why? (3 points)\n\nExplain."
    assert len(layout.announced_points(nb)) == 2  # the heading counts code cells only; the text says nothing

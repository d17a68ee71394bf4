"""What the robustness suite (test_robustness.py, slow) grades is real: its chapters are the ones the
grader finds, and every chapter has a plausible bug from its ``BUGS`` that can be pasted into the
notebook and must lose points. Checked here without nbgrader, so the fast suite catches an empty or
unusable bug table before the slow one would grade nothing."""

import json
import pathlib

import pytest

from authoring import registry
from autograder.workspace import course_assignments, source_notebook

from grading_cases import bug_case, plausible_bugs

REPO = pathlib.Path(__file__).resolve().parents[2]
CHAPTERS = registry.chapters()


def test_the_grader_finds_the_registered_chapters():
    assert course_assignments(REPO) == [c.id for c in CHAPTERS]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.id)
def test_every_chapter_has_a_plausible_bug_to_grade(chapter):
    bugs = plausible_bugs(REPO / chapter.bugs)
    release = json.loads((REPO / chapter.student_notebook).read_text())
    case = bug_case(chapter.id, source_notebook(REPO, chapter.id), release, bugs)
    assert bugs and case, f"{chapter.bugs}: no bug that the robustness suite can paste into the notebook and grade"
    assert case["bug"].expect_zero_cells, "the pasted bug must name the cells it loses"

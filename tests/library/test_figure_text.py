"""Every figure the library draws for the course is readable where it is shown: its smallest text is at
least 8 CSS px on the page (a figure wider than the content column is shrunk to it), and an explorer's
pictures are large enough to see the patch grid.

The figures are made as the chapters make them (``course_figures.py``); ``figure_text.py`` says how a
page shows a figure.
"""

import matplotlib.pyplot as plt
import pytest
from course_figures import EXPLORERS, FIGURES
from figure_text import COLUMN_PX, MIN_TEXT_PX, shown


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", FIGURES)
def test_smallest_text_is_readable_on_the_page(name):
    s = shown(FIGURES[name]())
    assert s.smallest_px >= MIN_TEXT_PX, (
        f"{name}: {s.smallest.text!r} at {s.smallest.points:g} pt shows as {s.smallest_px:.1f} px on the page "
        f"(the figure is {s.width_px:.0f} px wide, shown at {s.shown_px:.0f})")


@pytest.mark.parametrize("name", EXPLORERS)
def test_explorer_frames_are_readable_and_large(name):
    figures, dpi = EXPLORERS[name]()
    for s in (shown(fig, dpi) for fig in figures):
        assert s.smallest_px >= MIN_TEXT_PX, f"{name}: {s.smallest.text!r} shows as {s.smallest_px:.1f} px"
        assert s.shown_px >= 0.7 * COLUMN_PX, f"{name}: a frame {s.shown_px:.0f} px wide in a {COLUMN_PX} px column"


def test_the_measure_sees_a_shrunk_figure():
    """The measure itself: 10 pt text on a figure twice as wide as the column shows at half its size."""
    fig = plt.figure(figsize=(2 * COLUMN_PX / 100 - 0.2, 2))
    fig.text(0.5, 0.5, "x", fontsize=10)
    fig.add_artist(plt.Line2D([0, 1], [0, 1], transform=fig.transFigure))  # spans the whole width
    s = shown(fig)
    assert s.width_px == pytest.approx(2 * COLUMN_PX, rel=0.01) and s.smallest.text == "x"
    assert s.smallest_px == pytest.approx(10 / 72 * 100 / 2, rel=0.01)

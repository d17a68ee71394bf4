"""How large a figure's text appears on the book's pages.

A code cell's figure becomes a PNG at matplotlib's ``figure.dpi`` (100), cropped to what is drawn plus
0.1 in on each side (``bbox_inches="tight"``), and the page shows it at its pixel size, shrunk to the
width of the content column when it is wider. An explorer's frames are saved the same way at their own
dpi. So one point of font size shows as ``dpi / 72 * min(1, column / width)`` CSS pixels.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
from matplotlib.backends.backend_agg import RendererAgg

matplotlib.use("Agg")

COLUMN_PX = 688  # the content column in CSS px, measured in Chromium at the 1280 px window the site tests use (790 at 1440 and wider)
INLINE_DPI = 100  # matplotlib's figure.dpi, which the notebooks' inline figures are saved with
PAD_IN = 0.1  # savefig's pad_inches around a tight bounding box
MIN_TEXT_PX = 8


@dataclass
class Drawn:
    text: str
    points: float  # font size in points


@contextmanager
def recording():
    """Record every text the Agg renderer draws (what is really on the picture, nothing hidden)."""
    drawn: list[Drawn] = []
    original = RendererAgg.draw_text

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if s.strip():
            drawn.append(Drawn(s, prop.get_size_in_points()))
        return original(self, gc, x, y, s, prop, angle, ismath, mtext)

    RendererAgg.draw_text = draw_text
    try:
        yield drawn
    finally:
        RendererAgg.draw_text = original


@dataclass
class Shown:
    """A figure as a page shows it."""

    width_px: float  # the saved picture's width
    shown_px: float  # its width on the page
    smallest: Drawn  # the smallest text drawn
    dpi: float = INLINE_DPI  # the picture's pixels per inch

    @property
    def smallest_px(self) -> float:
        """The smallest text's size on the page, in CSS px."""
        return self.smallest.points / 72 * self.dpi * self.shown_px / self.width_px


def shown(fig, dpi: float = INLINE_DPI) -> Shown:
    """Measure ``fig`` saved at ``dpi`` with a tight bounding box and shown in the content column."""
    with recording() as drawn:
        fig.canvas.draw()
        bbox = fig.get_tightbbox(fig.canvas.get_renderer())
    if not drawn:
        raise AssertionError("the figure draws no text")
    width_px = (bbox.width + 2 * PAD_IN) * dpi
    return Shown(width_px, min(width_px, COLUMN_PX), min(drawn, key=lambda d: d.points), dpi)

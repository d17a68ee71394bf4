"""Explorers that keep working on the static site, where no Python kernel runs.

Every combination of the sliders' values is rendered once, when the book builds: a picture (PNG or
JPEG, embedded in the page) and a line of HTML with the numbers. A few lines of JavaScript in the page
switch between them as a slider moves. Nothing is fetched from the network and nothing is computed
in the browser, so what the reader sees is exactly what the Python code computed.

    def render(size, patch):
        fig = ...                                   # a matplotlib Figure for this setting
        return fig, f"{size} px, patch {patch}"     # (picture, HTML text)

    static_explorer({"resolution": [96, 224], "patch size": [14, 16]}, render, initial={"resolution": 224})

With a running kernel, ``vitcourse.widgets`` has the live (ipywidgets) versions.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt

__all__ = ["StaticExplorer", "static_explorer", "figure_data_uri"]

# Runs once per explorer, right after its markup: reads the frames, wires the sliders.
_SCRIPT = """<script>(function () {
  var root = document.currentScript.previousElementSibling;
  var data = JSON.parse(root.querySelector('script[type="application/json"]').textContent);
  var inputs = root.querySelectorAll('input[type=range]');
  function update() {
    var key = [];
    inputs.forEach(function (el) {
      root.querySelector('output[for="' + el.id + '"]').textContent = data.values[el.dataset.name][+el.value];
      key.push(el.value);
    });
    var frame = data.frames[key.join('|')];
    root.querySelector('img.vit-explorer-picture').src = data.images[frame[0]];
    root.querySelector('.vit-explorer-text').innerHTML = frame[1];
  }
  inputs.forEach(function (el) { el.addEventListener('input', update); });
})();</script>"""


def figure_data_uri(fig, fmt: str = "png", dpi: int = 100) -> str:
    """A matplotlib Figure as a ``data:`` URI (the figure is closed). At the default 100 dpi, the dpi of a
    notebook's inline figures, a frame shows on the page as the same figure drawn in a code cell would."""
    buffer = io.BytesIO()
    kwargs = {"pil_kwargs": {"quality": 82}} if fmt == "jpeg" else {}
    fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight", **kwargs)
    plt.close(fig)
    return f"data:image/{fmt};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class StaticExplorer:
    """Sliders over precomputed frames. ``frames`` maps the sliders' positions, ``"i|j"``, to
    (index into ``images``, HTML text)."""

    values: dict[str, list]
    initial: dict[str, object]
    images: list[str] = field(repr=False)
    frames: dict[str, tuple[int, str]]
    slug: str = "explorer"

    def key(self, setting: Mapping[str, object]) -> str:
        return "|".join(str(self.values[name].index(value)) for name, value in setting.items())

    def frame(self, setting: Mapping[str, object] | None = None) -> tuple[str, str]:
        """(image data URI, HTML text) of a setting {label: value}; sliders left out keep their initial value."""
        index, text = self.frames[self.key({**self.initial, **(setting or {})})]
        return self.images[index], text

    def _repr_html_(self) -> str:
        image, text = self.frame()
        rows = []
        for i, (name, values) in enumerate(self.values.items()):
            ident = f"{self.slug}-{i}"
            position = values.index(self.initial[name])
            rows.append(
                f'<label for="{ident}" style="margin-right:1.5em">{html.escape(name)} '
                f'<input type="range" id="{ident}" data-name="{html.escape(name)}" min="0" max="{len(values) - 1}" '
                f'step="1" value="{position}" style="vertical-align:middle"> '
                f'<output for="{ident}">{html.escape(str(self.initial[name]))}</output></label>')
        payload = json.dumps({"values": self.values, "images": self.images, "frames": self.frames})
        payload = payload.replace("</", "<\\/")  # the JSON sits inside a <script> element
        return (f'<div class="vit-explorer" data-explorer="{self.slug}">'
                f'<div class="vit-explorer-sliders">{"".join(rows)}</div>'
                f'<p class="vit-explorer-text">{text}</p>'
                f'<img class="vit-explorer-picture" alt="{html.escape(self.slug)}" src="{image}" '
                'style="max-width:100%">'
                f'<script type="application/json">{payload}</script></div>' + _SCRIPT)


def static_explorer(sliders: Mapping[str, Sequence], render: Callable[..., tuple[object, str]],
                    initial: Mapping[str, object] | None = None, fmt: str = "png", dpi: int = 100,
                    slug: str = "explorer") -> StaticExplorer:
    """Render ``render(**setting) -> (Figure, html_text)`` for every combination of slider values.

    ``sliders`` maps a label to its values, in slider order; ``render`` receives one keyword argument
    per slider, named by its label with spaces turned into underscores. ``initial`` picks the
    starting value of some sliders (default: each slider's first value).
    """
    values = {name: list(options) for name, options in sliders.items()}
    for name, options in values.items():
        if not options:
            raise ValueError(f"slider {name!r} has no values: give it at least one")
    start = {name: options[0] for name, options in values.items()}
    for name, value in (initial or {}).items():
        if name not in values or value not in values[name]:
            raise ValueError(f"initial value {name}={value!r} is not one of the slider's values {values.get(name)}")
        start[name] = value
    images: list[str] = []
    seen: dict[str, int] = {}
    frames: dict[str, tuple[int, str]] = {}
    for combination in itertools.product(*values.values()):
        setting = dict(zip(values, combination))
        fig, text = render(**{name.replace(" ", "_"): v for name, v in setting.items()})
        uri = figure_data_uri(fig, fmt=fmt, dpi=dpi)
        if uri not in seen:
            seen[uri] = len(images)
            images.append(uri)
        frames["|".join(str(values[name].index(v)) for name, v in setting.items())] = (seen[uri], text)
    return StaticExplorer(values, start, images, frames, slug)

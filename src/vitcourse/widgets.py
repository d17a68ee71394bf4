"""Interactive explorers: ipywidgets versions for a running kernel, static versions for the site.

A widget needs a running Python kernel to recompute. The ``static_*_explorer`` functions render every
setting when the book builds and let a few lines of JavaScript switch between them
(``vitcourse.explorer``), so the published page responds to its sliders with no kernel.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from vitcourse import data, explorer, viz
from vitcourse.models.patches import num_tokens, vit_macs

__all__ = ["patch_explorer", "static_patch_explorer", "static_patch_panel", "describe_setting"]

RESOLUTIONS = (64, 96, 128, 224, 336, 448, 518)
PATCH_SIZES = (8, 14, 16, 32)


def describe_setting(size: int, patch_size: int) -> str:
    """One line: grid, tokens and ViT-B cost for a square image."""
    g, left = divmod(size, patch_size)
    macs = vit_macs(size, patch_size, 768, 12)["total"]
    dropped = f" ({left} px dropped on the right and bottom)" if left else ""
    return (f"{size}x{size} px, patch {patch_size}: {g}x{g} grid, {num_tokens(size, size, patch_size)} tokens "
            f"with CLS; ViT-B forward {macs / 1e9:.1f} GMACs = {2 * macs / 1e9:.1f} GFLOPs{dropped}")


def _resized(image: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def patch_explorer(image: torch.Tensor | None = None, resolutions=RESOLUTIONS, patch_sizes=PATCH_SIZES):
    """Sliders for resolution and patch size over a photograph; shows grid, tokens and ViT-B cost.

    The picture is an ``ipywidgets.Image`` redrawn on every change (no Output widget), so the saved
    widget state shows the current picture even where no kernel runs.
    """
    import ipywidgets as w

    image = data.photo("chelsea", 448) if image is None else image
    size = w.SelectionSlider(options=list(resolutions), value=224 if 224 in resolutions else resolutions[0],
                             description="resolution")
    patch = w.SelectionSlider(options=list(patch_sizes), value=16 if 16 in patch_sizes else patch_sizes[0],
                              description="patch size")
    label = w.HTML()
    picture = w.Image(format="png", layout=w.Layout(width="420px"))

    def update(*_):
        label.value = f"<b>{describe_setting(size.value, patch.value)}</b>"
        fig = viz.show_patch_grid(_resized(image, size.value), patch.value, numbers=size.value // patch.value <= 16)
        picture.value = _png(fig)

    size.observe(update, names="value")
    patch.observe(update, names="value")
    update()
    return w.VBox([w.HBox([size, patch]), label, picture])


def static_patch_panel(image: torch.Tensor | None = None,
                       settings=((224, 32), (224, 16), (224, 14), (336, 14))):
    """The explorer's picture for a few (resolution, patch size) settings side by side."""
    image = data.photo("chelsea", 448) if image is None else image
    side = min(3.2, viz.PAGE_WIDTH / len(settings))  # the row fits the page
    fig, axes = plt.subplots(1, len(settings), figsize=(side * len(settings), side + 0.5))
    for ax, (size, p) in zip(axes, settings):
        viz.show_patch_grid(_resized(image, size), p, ax=ax, numbers=False,
                            title=f"{size} px, P={p}\n{num_tokens(size, size, p)} tokens")
    fig.tight_layout()
    return fig


def static_patch_explorer(image: torch.Tensor | None = None, resolutions=RESOLUTIONS,
                          patch_sizes=PATCH_SIZES) -> explorer.StaticExplorer:
    """The patch explorer for the static site: every (resolution, patch size) drawn at build time."""
    image = data.photo("chelsea", 448) if image is None else image

    def render(resolution, patch_size):
        fig, ax = plt.subplots(figsize=(7.0, 7.0))  # a frame about 500 px wide
        viz.show_patch_grid(_resized(image, resolution), patch_size, ax=ax, numbers=resolution // patch_size <= 14)
        return fig, f"<b>{describe_setting(resolution, patch_size)}</b>"

    initial = {"resolution": 224 if 224 in resolutions else resolutions[0],
               "patch size": 16 if 16 in patch_sizes else patch_sizes[0]}
    return explorer.static_explorer({"resolution": list(resolutions), "patch size": list(patch_sizes)}, render,
                                    initial=initial, fmt="jpeg", dpi=90, slug="patch-explorer")

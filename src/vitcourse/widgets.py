"""Interactive explorers (ipywidgets) and the static figures that stand in for them on the site.

A widget needs a running Python kernel to recompute; on the static site the same picture is shown
for a few fixed settings by the ``static_*`` function next to it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from vitcourse import data, flops, viz
from vitcourse.models.patches import num_tokens

__all__ = ["patch_explorer", "static_patch_panel", "describe_setting"]


def describe_setting(size: int, patch_size: int) -> str:
    """One line: grid, tokens and ViT-B cost for a square image."""
    g = size // patch_size
    macs = flops.vit_macs(size, patch_size, 768, 12)["total"]
    return (f"{size}x{size} px, patch {patch_size}: {g}x{g} grid, {num_tokens(size, size, patch_size)} tokens "
            f"with CLS; ViT-B forward {macs / 1e9:.1f} GMACs = {2 * macs / 1e9:.1f} GFLOPs")


def _resized(image: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def patch_explorer(image: torch.Tensor | None = None, resolutions=(64, 96, 128, 224, 336, 448, 518),
                   patch_sizes=(8, 14, 16, 32)):
    """Sliders for resolution and patch size over a photograph; shows grid, tokens and ViT-B cost."""
    import ipywidgets as w
    from IPython.display import display

    image = data.photo("chelsea", 448) if image is None else image
    size = w.SelectionSlider(options=list(resolutions), value=224 if 224 in resolutions else resolutions[0],
                             description="resolution")
    patch = w.SelectionSlider(options=list(patch_sizes), value=16 if 16 in patch_sizes else patch_sizes[0],
                              description="patch size")
    label = w.HTML()
    out = w.Output()

    def update(*_):
        label.value = f"<b>{describe_setting(size.value, patch.value)}</b>"
        with out:
            out.clear_output(wait=True)
            fig = viz.show_patch_grid(_resized(image, size.value), patch.value, numbers=size.value // patch.value <= 16)
            display(fig)
            plt.close(fig)

    size.observe(update, names="value")
    patch.observe(update, names="value")
    update()
    return w.VBox([w.HBox([size, patch]), label, out])


def static_patch_panel(image: torch.Tensor | None = None,
                       settings=((224, 32), (224, 16), (224, 14), (336, 14))):
    """The explorer's picture for a few (resolution, patch size) settings side by side."""
    image = data.photo("chelsea", 448) if image is None else image
    fig, axes = plt.subplots(1, len(settings), figsize=(3.2 * len(settings), 3.6))
    for ax, (size, p) in zip(axes, settings):
        viz.show_patch_grid(_resized(image, size), p, ax=ax, numbers=False,
                            title=f"{size} px, P={p}\n{num_tokens(size, size, p)} tokens")
    fig.tight_layout()
    return fig

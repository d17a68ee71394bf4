"""Every figure the course's library draws, made as the chapters make them (same arguments and sizes).

``FIGURES`` maps a name, ``chapter-id/what``, to a function returning the Figure; ``EXPLORERS`` maps a
name to a function returning the figures of every frame of a static explorer and the dpi they are saved
at. The chapter id in the name marks the test of the figure as the chapter's.
"""

from __future__ import annotations

from unittest import mock

import torch

from vitcourse import data, diagrams, explorer, viz, widgets
from vitcourse.models.dino import DINOLoss, MultiCrop
from vitcourse.models.mae import MAE
from vitcourse.models.patches import patchify, unpatchify
from vitcourse.models.swin import SwinBlock
from vitcourse.models.vit import Block, ViT
from vitcourse.train import History


def _meta(cls, **kwargs):
    with torch.device("meta"):
        return cls(**kwargs)


def _cat(size=224):
    return data.photo("chelsea", size)


def _digits(n):
    return data.digits(16, "test").tensors[0][:n]


def _history():
    h = History()
    h.step, h.loss, h.lr = list(range(1, 61)), [2.3 - 0.03 * i for i in range(60)], [1e-3] * 60
    h.epoch, h.train_acc, h.test_acc, h.seconds = [1, 2, 3], [0.5, 0.7, 0.8], [0.45, 0.65, 0.75], [1.0, 2.0, 3.0]
    return h


def _views(crops, image):
    torch.manual_seed(0)
    return crops(image)


def _reconstructions(size=1.3):
    images = _digits(6)
    mask = (torch.rand(6, 16, generator=torch.Generator().manual_seed(0)) < 0.75).float()
    return viz.show_reconstructions(images, torch.rand(6, 16, 16), mask, 4,
                                    titles=("original", "75% masked", "reconstruction"), size=size)


FIGURES = {
    # chapter 1
    "01-patches/patch grid": lambda: viz.show_patch_grid(_cat(), patch_size=16),
    "01-patches/patch sequence": lambda: viz.show_patch_sequence(patchify(_cat()[None], 16)[0], patch_size=16, channels=3,
                                                         max_patches=42),
    "01-patches/shuffled patches": lambda: viz.show_images(
        torch.stack([_cat(), unpatchify(patchify(_cat()[None], 16)[:, torch.randperm(196)], 16, 224)[0]]),
        titles=["patches in order", "the same patches shuffled"], ncols=2, size=3),
    "01-patches/ViT pipeline": lambda: diagrams.vit_pipeline(_meta(ViT, img_size=224, patch_size=16, embed_dim=768, depth=12,
                                                           num_heads=12)),
    "01-patches/explorer panel": lambda: widgets.static_patch_panel(_cat(448)),
    # chapter 3
    "03-vit/encoder block": lambda: diagrams.encoder_block(Block(768, 12)),
    "03-vit/training history": lambda: viz.plot_history(_history(), "ViT on the digits"),
    "03-vit/test digits": lambda: viz.show_images(_digits(4), titles=["label 5", "label 9", "label 2", "label 4"], ncols=4,
                                              size=1.6),
    "03-vit/class-token attention": lambda: viz.show_attention(_digits(1)[0], torch.rand(4, 4),
                                                           titles=["class-token attention, last block"], size=2.4),
    "03-vit/DINO heads": lambda: viz.show_attention(_cat(), torch.rand(6, 14, 14)),
    # chapter 4
    "04-deit/DeiT tokens": lambda: diagrams.deit_tokens(_meta(ViT, img_size=224, patch_size=16, embed_dim=384, depth=12,
                                                         num_heads=6, distilled=True)),
    # chapter 5
    "05-dino/official crops": lambda: viz.show_images(
        _views(MultiCrop(mean=None, std=None), _cat(448)), titles=["global"] * 2 + ["local"] * 8, ncols=10, size=1.25,
        title="official setting: 2 x 224 px + 8 x 96 px (sizes not to scale)"),
    "05-dino/tiny crops": lambda: viz.show_images(
        _views(MultiCrop.tiny(), _digits(1)[0]), titles=["global"] * 2 + ["local"] * 4, ncols=6, size=1.25,
        title="tiny setting: 2 x 16 px + 4 x 8 px"),
    "05-dino/DINO loop": lambda: diagrams.dino_loop(MultiCrop(), DINOLoss(65536)),
    "05-dino/collapse diagnostics": lambda: viz.plot_collapse({
        name: {"teacher_entropy": [4.0 - k * i / 100 for i in range(100)],
               "marginal_entropy": [4.1 - k * i / 200 for i in range(100)], "kl": [0.5 - 0.004 * i for i in range(100)]}
        for name, k in (("no centering", 3.9), ("no sharpening", -0.1), ("centering + sharpening", 1.0))}, K=64),
    # chapter 6
    "06-mae/masked cat": lambda: viz.show_images(torch.stack([_cat(), _cat() * 0.5]),
                                             titles=["image", "what the encoder sees (75% removed)"], ncols=2, size=3),
    "06-mae/MAE flow": lambda: diagrams.mae_flow(_meta(MAE, img_size=224, patch_size=16, in_chans=3, embed_dim=1024,
                                                   depth=24, num_heads=16), mask_ratio=0.75),
    "06-mae/reconstructions": lambda: _reconstructions(1.2),
    "06-mae/reconstructions (notebook)": lambda: _reconstructions(),
    # chapter 7
    "07-swin/shifted windows": lambda: diagrams.swin_windows(SwinBlock(8, 2, window_size=4, shift_size=2), grid=8),
    # chapter 8
    "08-registers/register tokens": lambda: diagrams.register_tokens(_meta(ViT, img_size=224, patch_size=14, embed_dim=384,
                                                                 depth=12, num_heads=6, num_registers=4,
                                                                 no_embed_class=True)),
    "08-registers/norm histograms": lambda: viz.plot_norm_histograms(
        {"no registers": torch.rand(64, 36) * 3, "4 registers": torch.rand(64, 36) * 2}, threshold=2.5),
    "08-registers/norm map": lambda: viz.plot_norm_map(torch.rand(37 * 37), (37, 37), title="dinov2_vits14\n3 tokens flagged"),
    # chapter 9
    "09-vlm/zero-shot digits": lambda: viz.show_images(_digits(8) * 0.3 + 0.3, titles=[f"'... digit {d}'" for d in range(8)],
                                                   ncols=8, size=1.3),
}


def _explorer_frames(build):
    """The figures of every frame of a static explorer, and the dpi they are saved at."""
    figures, dpis = [], set()

    def keep(fig, fmt="png", dpi=100):
        figures.append(fig)
        dpis.add(dpi)
        return f"data:image/{fmt};base64,{len(figures)}"

    with mock.patch.object(explorer, "figure_data_uri", keep):
        build()
    (dpi,) = dpis
    return figures, dpi


EXPLORERS = {
    "01-patches/patch explorer": lambda: _explorer_frames(
        lambda: widgets.static_patch_explorer(_cat(448), resolutions=(64, 224, 518), patch_sizes=(8, 14, 32))),
}

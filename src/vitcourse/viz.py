"""Figures for the course: images, patch grids, patch sequences, training curves, attention maps,
DINO's collapse diagnostics, MAE reconstructions, token norms.

Every function draws with matplotlib and returns the Figure (in a notebook it shows by itself).
Images are (C, H, W) or (B, C, H, W) tensors with values in [0, 1]. A figure is at most
``PAGE_WIDTH`` inches wide, the width of the book's content column at matplotlib's 100 dpi, so the
page never shrinks it and its text keeps the size it was drawn at.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from vitcourse.analysis import token_norms
from vitcourse.models.patches import patchify, unpatchify

__all__ = ["show_images", "show_patch_grid", "show_patch_sequence", "plot_history", "show_attention",
           "plot_collapse", "show_reconstructions", "plot_norm_histograms", "plot_norm_map", "PAGE_WIDTH"]

PAGE_WIDTH = 6.6  # inches: with savefig's margins, 680 px at 100 dpi, within the book's 688 px column


def _panel_size(size: float, ncols: int) -> float:
    """The side of one of ``ncols`` panels in a row: ``size``, or less where the row would not fit the page."""
    return min(size, PAGE_WIDTH / ncols)


def _to_hwc(image: torch.Tensor):
    image = image.detach().float().cpu()
    if image.ndim == 3:
        image = image.permute(1, 2, 0)
        if image.shape[-1] == 1:
            image = image[..., 0]
    return image.clamp(0, 1).numpy()


def _imshow(ax, image: torch.Tensor) -> None:
    ax.imshow(_to_hwc(image), cmap="gray" if image.ndim == 2 or image.shape[0] == 1 else None,
              vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])


def show_images(images, titles=None, ncols: int = 8, size: float = 1.5, title: str | None = None):
    """A grid of images: a (B, C, H, W) tensor or a list of (C, H, W), ``titles`` one per image, and a
    ``title`` above them all. ``size``: the side of one image in inches (less when a row would not fit)."""
    images = list(images)
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    size = _panel_size(size, ncols)
    height = nrows * (size + (0.25 if titles is not None else 0)) + (0.3 if title else 0)  # room for the titles
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, height), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        ax.axis("on")
        _imshow(ax, image)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()  # after the title, so that it makes room for it
    return fig


def show_patch_grid(image: torch.Tensor, patch_size: int, ax=None, numbers: bool = True, title: str | None = None):
    """The image with its patch grid drawn on top and patches numbered in row-major order."""
    H, W = image.shape[-2:]
    fig, ax = (plt.subplots(figsize=(5, 5 * H / W)) if ax is None else (ax.figure, ax))
    _imshow(ax, image)
    rows, cols = H // patch_size, W // patch_size
    for r in range(rows + 1):
        ax.axhline(r * patch_size - 0.5, color="white", lw=0.8)
    for c in range(cols + 1):
        ax.axvline(c * patch_size - 0.5, color="white", lw=0.8)
    if numbers and rows * cols <= 400:
        fontsize = max(4, min(9, 110 / max(rows, cols)))
        for r in range(rows):
            for c in range(cols):
                ax.text((c + 0.5) * patch_size - 0.5, (r + 0.5) * patch_size - 0.5, str(r * cols + c),
                        color="yellow", ha="center", va="center", fontsize=fontsize)
    ax.set_title(title or f"{H}x{W} px, patch {patch_size}: {rows}x{cols} = {rows * cols} patches", fontsize=10)
    return fig


def show_patch_sequence(patches: torch.Tensor, patch_size: int, channels: int = 3, max_patches: int = 28,
                        per_row: int = 14):
    """Flattened patches (N, P*P*C), in (row, col, channel) order, drawn as tiles in sequence order."""
    n = min(max_patches, patches.shape[0])
    tiles = patches[:n].reshape(n, patch_size, patch_size, channels).permute(0, 3, 1, 2)
    rows = math.ceil(n / per_row)
    tile = _panel_size(0.55, per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(tile * per_row, (tile + 0.15) * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        _imshow(ax, tiles[i])
        ax.axis("on")
        ax.set_title(str(i), fontsize=7, pad=2)
    fig.suptitle(f"the first {n} of {patches.shape[0]} tokens, in sequence order", fontsize=9)
    fig.tight_layout()
    return fig


def plot_history(history, title: str | None = None):
    """Training loss per step and accuracy per epoch from a ``vitcourse.train.History``."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 2.6))
    ax1.plot(history.step, history.loss, lw=0.8)
    ax1.set_xlabel("step"), ax1.set_ylabel("training loss"), ax1.grid(alpha=0.3)
    if history.train_acc:
        ax2.plot(history.epoch, history.train_acc, "o-", label="train")
    if history.test_acc:
        ax2.plot(history.epoch, history.test_acc, "s-", label="test")
    ax2.set_xlabel("epoch"), ax2.set_ylabel("accuracy"), ax2.grid(alpha=0.3)
    if history.train_acc or history.test_acc:
        ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_attention(image: torch.Tensor, attn: torch.Tensor, alpha: float = 0.6, titles=None, size: float = 2.5):
    """Attention maps (h, w) or (heads, h, w) upsampled over the image, one panel per map."""
    maps = attn[None] if attn.ndim == 2 else attn
    H, W = image.shape[-2:]
    up = F.interpolate(maps[:, None].float(), size=(H, W), mode="nearest")[:, 0]
    n = maps.shape[0] + 1
    size = _panel_size(size, n)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size), squeeze=False)
    _imshow(axes[0, 0], image)
    axes[0, 0].set_title("image", fontsize=9)
    for i in range(maps.shape[0]):
        ax = axes[0, i + 1]
        _imshow(ax, image)
        m = up[i]
        m = (m - m.min()) / (m.max() - m.min() + 1e-12)
        ax.imshow(m.cpu().numpy(), cmap="inferno", alpha=alpha)
        ax.set_title(titles[i] if titles else (f"head {i}" if maps.shape[0] > 1 else "attention"), fontsize=9)
    fig.tight_layout()
    return fig


def plot_collapse(histories: dict[str, dict[str, list[float]]], K: int):
    """DINO's three collapse diagnostics per step, one curve per run: ``histories`` maps a run's name to its
    ``train_dino`` history ("teacher_entropy", "marginal_entropy", "kl", in nats); ``log K`` is marked
    on the two entropies, the uniform distribution over K prototypes."""
    panels = {"teacher_entropy": "teacher entropy per image", "marginal_entropy": "entropy of the batch average",
              "kl": "KL(teacher || student)"}
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH, 2.5), sharex=True)
    for name, history in histories.items():
        for ax, key in zip(axes, panels):
            ax.plot(history[key], label=name, lw=1.2)
    for ax, title in zip(axes, panels.values()):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.axhline(math.log(K), color="gray", ls=":", lw=1.2, label=f"log K = {math.log(K):.2f}, uniform")
        ax.set_ylim(top=1.08 * math.log(K))
    axes[0].set_ylabel("nats", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False, columnspacing=1.2,
               handlelength=1.5)
    fig.tight_layout(rect=(0, 0.1, 1, 1))  # the legend sits below the panels, over no curve
    return fig


def show_reconstructions(images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, patch_size: int,
                         titles=("original", "encoder input", "reconstruction"), size: float = 1.3):
    """An MAE's work in three rows: the images (B, C, H, W), what the encoder saw (removed patches grey)
    and the prediction (B, N, P*P*C) with the visible patches pasted back. mask: (B, N), 1 = removed."""
    images, pred, m = images.detach().cpu(), pred.detach().cpu(), mask.detach().cpu()[..., None]
    patches, img_size = patchify(images, patch_size), tuple(images.shape[-2:])
    seen = unpatchify(patches * (1 - m) + 0.5 * m, patch_size, img_size)
    pasted = unpatchify(patches * (1 - m) + pred.clamp(0, 1) * m, patch_size, img_size)
    B = len(images)
    return show_images(torch.cat([images, seen, pasted]), ncols=B, size=size,
                       titles=[titles[0]] * B + [titles[1]] * B + [titles[2]] * B)

def plot_norm_histograms(norms_by_name: dict[str, torch.Tensor], threshold: float | None = None, ax=None,
                         bins: int = 50):
    """Overlaid histograms of token norms, one per entry (e.g. {"no registers": n0, "4 registers": n4}).

    Each entry: token features (B, N, D), or norms of any other shape (flattened). A vertical line
    marks ``threshold`` when given. Log-scaled counts, so a handful of outliers stays visible next to
    thousands of ordinary tokens.
    """
    fig, ax = plt.subplots(figsize=(6, 3.2)) if ax is None else (ax.figure, ax)
    flat = {name: (token_norms(n) if n.ndim == 3 else n.detach().float()).flatten()
            for name, n in norms_by_name.items()}
    hi = max(float(n.max()) for n in flat.values())
    edges = torch.linspace(0, hi * 1.02, bins + 1).numpy()
    for name, n in flat.items():
        ax.hist(n.cpu().numpy(), bins=edges, alpha=0.55, label=name)
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("patch-token norm"), ax.set_ylabel("tokens")
    ax.legend(frameon=False)
    return fig


def plot_norm_map(norms: torch.Tensor, grid: tuple[int, int], ax=None, title: str | None = None):
    """One image's patch-token norms (N,) drawn on its (h, w) patch grid, with a colour bar."""
    fig, ax = plt.subplots(figsize=(3, 3)) if ax is None else (ax.figure, ax)
    im = ax.imshow(token_norms(norms.reshape(1, -1)).reshape(grid).cpu().numpy(), cmap="magma")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)
    return fig

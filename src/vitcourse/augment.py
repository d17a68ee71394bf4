"""Data augmentation, for whole batches at once.

- ``random_shift`` and ``cut_out``: translate each image by a few pixels, blank one square of it;
  ``RandomShift`` wraps a dataset so every access draws a new shift (the digits recipe of chapter 3).
- ``random_resized_crops``: one random resized crop and flip per image, in one ``grid_sample`` call.
- ``grey`` and ``gaussian_blur``: luminance, and a Gaussian blur with one sigma per image.

DINO's multi-crop views, built from these, are ``vitcourse.models.dino.MultiCrop`` (chapter 5).

Images are float tensors (B, C, H, W) with values in [0, 1]. Every random draw comes from an optional
``torch.Generator``, so a seeded run repeats exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["random_shift", "cut_out", "RandomShift", "random_resized_crops", "grey", "gaussian_blur",
           "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None,
                 fill: float = 0.0) -> torch.Tensor:
    """Translate each image of a batch by its own random (dy, dx) in [-max_shift, max_shift].

    images (B, C, H, W) -> (B, C, H, W); pixels shifted in take the value ``fill``.
    """
    if max_shift < 0:
        raise ValueError(f"max_shift={max_shift} must be >= 0")
    B, C, H, W = images.shape
    padded = F.pad(images, (max_shift,) * 4, value=fill)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, B), generator=generator)
    rows = (dy[:, None] + torch.arange(H))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(W))[:, None, None, :]  # (B, 1, 1, W)
    return padded[torch.arange(B)[:, None, None, None], torch.arange(C)[None, :, None, None], rows, cols]


def cut_out(images: torch.Tensor, size: int, generator: torch.Generator | None = None,
            fill: float = 0.0) -> torch.Tensor:
    """Set one random ``size`` x ``size`` square of each image to ``fill`` (B, C, H, W) -> same."""
    B, C, H, W = images.shape
    top = torch.randint(0, H - size + 1, (B,), generator=generator)[:, None, None]
    left = torch.randint(0, W - size + 1, (B,), generator=generator)[:, None, None]
    r, c = torch.arange(H)[None, :, None], torch.arange(W)[None, None, :]
    inside = (r >= top) & (r < top + size) & (c >= left) & (c < left + size)  # (B, H, W)
    return images.masked_fill(inside[:, None], fill)


class RandomShift(torch.utils.data.Dataset):
    """Wraps an (image, label) dataset; each image is translated by up to ``max_shift`` pixels
    (``random_shift``, zeros shifted in), with a new draw at every access, so every epoch sees new
    positions. Draws come from a seeded generator.
    """

    def __init__(self, dataset, max_shift: int, seed: int = 0) -> None:
        if max_shift < 0:
            raise ValueError(f"max_shift={max_shift} must be >= 0")
        self.dataset, self.max_shift = dataset, max_shift
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        image, label = self.dataset[index]  # image (C, H, W)
        return random_shift(image[None], self.max_shift, self.generator)[0], label


def random_resized_crops(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One random resized crop (+ horizontal flip) per image: (B, C, H, W) -> (B, C, size, size).

    Each crop covers a fraction ``scale`` of the image area, with aspect ratio in ``ratio``
    (log-uniform, relative to the image's), as ``RandomResizedCrop``; it is resampled bilinearly
    (no antialiasing) by one ``grid_sample`` call for the whole batch.
    """
    B, dev = images.shape[0], images.device
    area = _uniform(B, *scale, generator)
    r = torch.exp(_uniform(B, math.log(ratio[0]), math.log(ratio[1]), generator))
    w = torch.sqrt(area * r).clamp(max=1.0)  # crop width and height as fractions of the image
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (_uniform(B, 0, 1, generator) * (1 - w) + w / 2) * 2 - 1  # crop centre in [-1, 1] coordinates
    cy = (_uniform(B, 0, 1, generator) * (1 - h) + h / 2) * 2 - 1
    flip = torch.where(_uniform(B, 0, 1, generator) < flip_p, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(dev), [B, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def grey(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W) luminance (ITU-R 601 weights for RGB, as torchvision)."""
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    return (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]).to(x.dtype)


def gaussian_blur(x: torch.Tensor, kernel: int, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own sigma (B,), separable ``kernel``-tap Gaussian, reflect padding."""
    B, C, H, W = x.shape
    t = torch.arange(kernel, dtype=x.dtype, device=x.device) - (kernel - 1) / 2
    k = torch.exp(-0.5 * (t[None] / sigma[:, None].to(x)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(C, dim=0)  # (B * C, kernel)
    y = F.pad(x.reshape(1, B * C, H, W), (kernel // 2,) * 4, mode="reflect")
    y = F.conv2d(y, k[:, None, :, None], groups=B * C)  # along rows
    y = F.conv2d(y, k[:, None, None, :], groups=B * C)  # along columns
    return y.reshape(B, C, H, W)

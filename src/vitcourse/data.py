"""Data that works with no network, and the online data sets when they can be reached.

- ``digits``: scikit-learn's bundled handwritten digits (1,797 grey 8x8 images, 10 classes),
  upsampled; the course's training set for CPU runs (``random_shift``, ``cut_out`` and
  ``RandomShift`` augment it).
- ``photo``: scikit-image's bundled photographs (Chelsea the cat, the astronaut, coffee, ...) for
  patch grids, crops and attention pictures.
- ``cifar10``: torchvision's CIFAR-10 when it can be downloaded; otherwise one clear line and the
  digits in CIFAR's shape instead. ``VITCOURSE_OFFLINE=1`` skips the attempt (the test suite sets it:
  a failed name lookup alone can take seconds).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["digits", "digits_loaders", "random_shift", "cut_out", "RandomShift", "photo", "PHOTOS", "cifar10"]

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "cat", "camera", "coins", "horse")


def digits(image_size: int = 16, split: str = "train", test_fraction: float = 0.2, seed: int = 0,
           channels: int = 1) -> TensorDataset:
    """The bundled digits as a TensorDataset of (images (N, channels, S, S) in [0, 1], labels (N,)).

    split: "train", "test" or "all"; the split is stratified and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits

    if split not in ("train", "test", "all"):
        raise ValueError(f"split={split!r}: use 'train', 'test' or 'all'")
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    if image_size != 8:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = images.clamp(0, 1).expand(-1, channels, -1, -1).contiguous()
    if split == "all":
        return TensorDataset(images, labels)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):  # stratified: the same fraction of every class
        idx = np.flatnonzero(bunch.target == c)
        test_idx.extend(rng.permutation(idx)[: round(len(idx) * test_fraction)])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_idx] = True
    keep = torch.from_numpy(is_test if split == "test" else ~is_test)
    return TensorDataset(images[keep], labels[keep])


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


def digits_loaders(batch_size: int = 128, image_size: int = 16, seed: int = 0, channels: int = 1,
                   shift: int = 0):
    """(train_loader, test_loader) over the digits; the training order is seeded.

    ``shift > 0`` augments the training images with random translations of up to ``shift`` pixels
    (``RandomShift``); the test images are never shifted.
    """
    train = digits(image_size, "train", seed=seed, channels=channels)
    test = digits(image_size, "test", seed=seed, channels=channels)
    if shift:
        train = RandomShift(train, shift, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    return (DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator),
            DataLoader(test, batch_size=512))


def photo(name: str = "chelsea", size: int | tuple[int, int] = 224) -> torch.Tensor:
    """A bundled photograph as a float tensor (3, H, W) in [0, 1], center-cropped to the aspect ratio
    of ``size`` and resized with antialiasing."""
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
    array = getattr(skimage.data, name)()
    image = torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
    image = image[None] if image.ndim == 2 else image.permute(2, 0, 1)[:3]
    image = image.expand(3, -1, -1)
    H, W = (size, size) if isinstance(size, int) else size
    h, w = image.shape[1:]
    scale = min(h / H, w / W)  # crop the largest centered window with the target's aspect ratio
    ch, cw = round(H * scale), round(W * scale)
    top, left = (h - ch) // 2, (w - cw) // 2
    image = image[:, top:top + ch, left:left + cw]
    image = F.interpolate(image[None], size=(H, W), mode="bilinear", antialias=True, align_corners=False)[0]
    return image.clamp(0, 1).contiguous()


def cifar10(root: str | pathlib.Path = "~/.cache/vitcourse", train: bool = True, transform=None):
    """CIFAR-10 from torchvision, downloaded on first use.

    Without a network: prints one line and returns the digits resized to 32 px with 3 channels
    (a TensorDataset; ``transform`` is not applied to it).
    """
    import torchvision

    root = pathlib.Path(root).expanduser()
    try:
        if os.environ.get("VITCOURSE_OFFLINE") == "1":
            raise ConnectionError("VITCOURSE_OFFLINE=1")
        return torchvision.datasets.CIFAR10(root, train=train, transform=transform, download=True)
    except Exception as exc:  # noqa: BLE001 - any download failure falls back
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        print(f"CIFAR-10 could not be downloaded ({reason}); using the bundled digits (32 px, 3 channels) instead.")
        return digits(32, "train" if train else "test", channels=3)

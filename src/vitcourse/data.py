"""Data that works with no network, and the online data sets when they can be reached.

- ``digits``: scikit-learn's bundled handwritten digits (1,797 grey 8x8 images, 10 classes),
  upsampled; the course's training set for CPU runs (``digits_loaders`` adds the random shifts of
  ``vitcourse.augment.RandomShift``).
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

from vitcourse.augment import RandomShift

__all__ = ["digits", "digits_loaders", "photo", "PHOTOS", "cifar10"]

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "cat", "camera", "coins", "horse")


def digits(img_size: int = 16, split: str = "train", test_fraction: float = 0.2, seed: int = 0,
           channels: int = 1, train_size: int | None = None) -> TensorDataset:
    """The bundled digits as a TensorDataset of (images (N, channels, S, S) in [0, 1], labels (N,)).

    split: "train", "test" or "all". The split is stratified (every class keeps its share) and fixed by
    ``seed``: a ``test_fraction`` of the 1,797 images is held out, or, with ``train_size``, all but
    ``train_size`` images (e.g. ``train_size=500`` for a small-data experiment).
    """
    from sklearn.datasets import load_digits

    if split not in ("train", "test", "all"):
        raise ValueError(f"split={split!r}: use 'train', 'test' or 'all'")
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    if img_size != 8:
        images = F.interpolate(images, size=(img_size, img_size), mode="bilinear", align_corners=False)
    images = images.clamp(0, 1).expand(-1, channels, -1, -1).contiguous()
    if split == "all":
        return TensorDataset(images, labels)
    n = len(labels)
    if train_size is not None and not 0 < train_size < n:
        raise ValueError(f"train_size={train_size}: choose between 1 and {n - 1} images")
    n_test = n - train_size if train_size is not None else round(n * test_fraction)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c, count in enumerate(_stratified_counts(np.bincount(bunch.target, minlength=10), n_test)):
        idx = np.flatnonzero(bunch.target == c)
        test_idx.extend(rng.permutation(idx)[:count])
    is_test = np.zeros(n, dtype=bool)
    is_test[test_idx] = True
    keep = torch.from_numpy(is_test if split == "test" else ~is_test)
    return TensorDataset(images[keep], labels[keep])


def _stratified_counts(class_sizes: np.ndarray, total: int) -> list[int]:
    """Split ``total`` over the classes in proportion to their sizes (largest remainders round up)."""
    share = class_sizes * total / class_sizes.sum()
    counts = np.floor(share).astype(int)
    for c in np.argsort(-(share - counts), kind="stable")[: total - counts.sum()]:
        counts[c] += 1
    return counts.tolist()


def digits_loaders(batch_size: int = 128, img_size: int = 16, seed: int = 0, channels: int = 1,
                   shift: int = 0):
    """(train_loader, test_loader) over the digits; the training order is seeded.

    ``shift > 0`` augments the training images with random translations of up to ``shift`` pixels
    (``RandomShift``); the test images are never shifted.
    """
    train = digits(img_size, "train", seed=seed, channels=channels)
    test = digits(img_size, "test", seed=seed, channels=channels)
    if shift:
        train = RandomShift(train, shift, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    pin = torch.cuda.is_available()  # page-locked batches copy to the GPU asynchronously (non_blocking=True)
    return (DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator, pin_memory=pin),
            DataLoader(test, batch_size=512, pin_memory=pin))


def photo(name: str = "chelsea", img_size: int | tuple[int, int] = 224) -> torch.Tensor:
    """A bundled photograph as a float tensor (3, H, W) in [0, 1], center-cropped to the aspect ratio
    of ``img_size`` and resized with antialiasing."""
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
    array = getattr(skimage.data, name)()
    image = torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
    image = image[None] if image.ndim == 2 else image.permute(2, 0, 1)[:3]
    image = image.expand(3, -1, -1)
    H, W = (img_size, img_size) if isinstance(img_size, int) else img_size
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

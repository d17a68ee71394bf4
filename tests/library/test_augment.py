"""vitcourse.augment: shifts, cut-outs, random resized crops and DINO's multi-crop, for batches."""

import pytest
import torch

from vitcourse import augment, data
from vitcourse.augment import MultiCrop, random_resized_crops


def test_random_shift_translates_training_images_only():
    base = data.digits(16, "train")
    shifted = augment.RandomShift(base, max_shift=2, seed=0)
    moves = set()
    for i in range(40):
        image, label = shifted[i]
        original, original_label = base[i]
        assert image.shape == original.shape and label == original_label
        padded = torch.nn.functional.pad(original, (2, 2, 2, 2))
        windows = {(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(padded[:, dy:dy + 16, dx:dx + 16], image)}
        assert windows, f"image {i} is not a translation of the original by at most 2 pixels"
        moves |= windows
    assert len(moves) > 5, "the shifts should vary from image to image"
    train_loader, test_loader = data.digits_loaders(batch_size=8, shift=1)
    assert isinstance(train_loader.dataset, augment.RandomShift)
    assert torch.equal(test_loader.dataset.tensors[0], data.digits(16, "test").tensors[0])
    with pytest.raises(ValueError, match="max_shift"):
        augment.RandomShift(base, -1)


def test_batch_shift_and_cut_out():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 2, 9, 11) + 1.0  # no pixel equals the fill value -5
    shifted = augment.random_shift(x, 2, g, fill=-5.0)
    for b in range(16):
        padded = torch.nn.functional.pad(x[b], (2, 2, 2, 2), value=-5.0)
        assert any(torch.equal(padded[:, dy:dy + 9, dx:dx + 11], shifted[b])
                   for dy in range(5) for dx in range(5)), f"image {b} is not a shift by <= 2 px"
    erased = augment.cut_out(x, 3, g, fill=-5.0)
    for b in range(16):
        hit = (erased[b] == -5.0).all(dim=0)  # (H, W): every channel erased together
        rows, cols = hit.nonzero(as_tuple=True)
        assert hit.sum() == 9 and rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2
        assert torch.equal(erased[b][:, ~hit], x[b][:, ~hit])
    assert torch.equal(augment.random_shift(x, 0), x)


@pytest.mark.chapter("05-dino")
def test_multicrop_official_defaults():
    mc = MultiCrop()
    assert (mc.global_size, mc.local_size, mc.num_local) == (224, 96, 8)
    assert mc.global_scale == (0.4, 1.0) and mc.local_scale == (0.05, 0.4)
    views = mc((torch.rand(3, 240, 260) * 255).to(torch.uint8), generator=torch.Generator().manual_seed(0))
    assert len(views) == 10 == mc.num_views
    assert [tuple(v.shape) for v in views] == [(3, 224, 224)] * 2 + [(3, 96, 96)] * 8
    assert all(v.dtype == torch.float32 for v in views)
    assert min(float(v.min()) for v in views) < 0  # ImageNet normalisation by default


@pytest.mark.chapter("05-dino")
def test_multicrop_batch_equals_its_images_and_repeats_with_a_seed():
    x = torch.rand(4, 3, 40, 40)
    mc = MultiCrop(32, 16, 3, mean=None, std=None)
    a = mc(x, generator=torch.Generator().manual_seed(5))
    b = mc(x, generator=torch.Generator().manual_seed(5))
    assert [tuple(v.shape) for v in a] == [(4, 3, 32, 32)] * 2 + [(4, 3, 16, 16)] * 3
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert all(0 <= float(v.min()) and float(v.max()) <= 1 for v in a)
    single = mc(x[0], generator=torch.Generator().manual_seed(5))
    assert [tuple(v.shape) for v in single] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3


@pytest.mark.chapter("05-dino")
def test_multicrop_tiny_preset():
    mc = MultiCrop.tiny()
    views = mc(torch.rand(5, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(5, 1, 16, 16)] * 2 + [(5, 1, 8, 8)] * 4
    assert all(0 <= float(v.min()) and float(v.max()) <= 1 for v in views)
    assert len(MultiCrop.tiny(num_local=6)(torch.rand(1, 16, 16))) == 8


@pytest.mark.chapter("05-dino")
def test_random_resized_crops_identity_and_flip():
    x = torch.rand(3, 1, 16, 16)
    full = random_resized_crops(x, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)
    torch.testing.assert_close(full, x)
    flipped = random_resized_crops(x, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0)
    torch.testing.assert_close(flipped, x.flip(-1))
    # a horizontal ramp: the spread of values in a crop is the fraction of the width it covers
    ramp = torch.linspace(0, 1, 64).expand(200, 1, 64, 64).contiguous()
    small = random_resized_crops(ramp, 16, scale=(0.05, 0.1), ratio=(1.0, 1.0),
                                 generator=torch.Generator().manual_seed(0))
    spread = small.amax(dim=(1, 2, 3)) - small.amin(dim=(1, 2, 3))
    assert 0.15 < float(spread.min()) and float(spread.max()) < 0.35  # sqrt(0.05) to sqrt(0.1) of the width


def _photometric(**kw):
    settings = dict(ratio=(1.0, 1.0), flip_p=0.0, color_jitter=(0, 0, 0, 0), grayscale_p=0.0, blur_p=(0, 0, 0),
                    solarize_p=0.0, mean=None, std=None)
    return MultiCrop(16, 8, 1, (1.0, 1.0), (1.0, 1.0), **(settings | kw))


@pytest.mark.chapter("05-dino")
def test_each_photometric_step_does_what_it_says():
    x = torch.rand(6, 3, 16, 16)
    g = lambda: torch.Generator().manual_seed(1)
    plain = _photometric()(x, generator=g())
    torch.testing.assert_close(plain[0], x)  # a crop of the whole image, no flip, nothing else: the image
    grey = _photometric(grayscale_p=1.0)(x, generator=g())[0]
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    torch.testing.assert_close(grey[:, 0], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    solar = _photometric(solarize_p=1.0)(x, generator=g())
    torch.testing.assert_close(solar[1], torch.where(x >= 0.5, 1 - x, x))  # global view 2 only
    torch.testing.assert_close(solar[0], x)
    blurred = _photometric(blur_p=(1.0, 0.0, 0.0), blur_kernel=(5, 3))(x, generator=g())[0]
    assert blurred.std() < x.std() * 0.9 and torch.allclose(blurred.mean(), x.mean(), atol=0.02)
    bright = _photometric(color_jitter=(0.5, 0.0, 0.0, 0.0), jitter_p=1.0)(x, generator=g())[0]
    ratio = (bright / x)[x < 0.6].reshape(-1)  # unclipped pixels: one factor per image, in [0.5, 1.5]
    assert 0.5 <= float(ratio.min()) and float(ratio.max()) <= 1.5
    hue = _photometric(color_jitter=(0.0, 0.0, 0.0, 0.1), jitter_p=1.0)(x, generator=g())[0]
    assert hue.shape == x.shape and not torch.allclose(hue, x)


def test_bad_scales_are_refused():
    with pytest.raises(ValueError, match="scales"):
        MultiCrop(global_scale=(0.05, 0.4), local_scale=(0.4, 1.0))

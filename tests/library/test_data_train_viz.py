import io
from contextlib import redirect_stderr
from unittest import mock

import matplotlib
import pytest
import torch

from vitcourse import data, train, viz, widgets
from vitcourse.models.patches import patchify


def test_digits_split_is_stratified_and_fixed():
    tr, te = data.digits(16, "train"), data.digits(16, "test")
    assert len(tr) + len(te) == 1797 and tr.tensors[0].shape[1:] == (1, 16, 16)
    assert tr.tensors[0].min() >= 0 and tr.tensors[0].max() <= 1
    counts = torch.bincount(te.tensors[1], minlength=10)
    assert counts.min() >= 30
    assert torch.equal(data.digits(16, "test").tensors[1], te.tensors[1])
    with pytest.raises(ValueError, match="split"):
        data.digits(split="val")


def test_photo_shapes_and_errors():
    img = data.photo("chelsea", 224)
    assert img.shape == (3, 224, 224) and 0 <= img.min() and img.max() <= 1
    assert data.photo("camera", (64, 96)).shape == (3, 64, 96)  # grey photo -> 3 channels
    with pytest.raises(ValueError, match="chelsea"):
        data.photo("dog")


def test_cifar_falls_back_with_one_line(tmp_path, capsys):
    with mock.patch("torchvision.datasets.CIFAR10", side_effect=RuntimeError("no network")):
        ds = data.cifar10(tmp_path)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "digits" in out[0]
    assert ds.tensors[0].shape[1:] == (3, 32, 32)


def test_fit_learns_digits_quietly_and_reproducibly():
    torch.set_num_threads(1)

    def run():
        train_loader, test_loader = data.digits_loaders(batch_size=64, img_size=8)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        err = io.StringIO()
        with redirect_stderr(err):
            history = train.fit(model, train_loader, epochs=6, lr=3e-3, eval_loader=test_loader)
        assert err.getvalue() == "", "training must not write to stderr (nbgrader fails such cells)"
        return history

    a, b = run(), run()
    assert a.loss == b.loss
    assert a.test_acc[-1] > 0.85
    assert len(a.epoch) == 6


def test_figures():
    matplotlib.use("Agg")
    cat = data.photo("chelsea", 64)
    assert viz.show_patch_grid(cat, 16) is not None
    assert viz.show_patch_sequence(patchify(cat[None], 16)[0], 16) is not None
    assert viz.show_images(torch.rand(3, 1, 8, 8), titles=["a", "b", "c"]) is not None
    assert viz.show_attention(cat, torch.rand(2, 4, 4)) is not None
    assert widgets.static_patch_panel(cat) is not None
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    fig = viz.show_reconstructions(torch.rand(1, 1, 8, 8), torch.rand(1, 4, 16), mask, 4)
    assert len([ax for ax in fig.axes if ax.images]) == 3  # original, encoder input, reconstruction
    tokens = torch.randn(2, 16, 8)
    assert viz.plot_norm_histograms({"a": tokens, "b": tokens.norm(dim=-1)}, threshold=3.0) is not None
    assert viz.plot_norm_map(tokens[0].norm(dim=-1), (4, 4)) is not None


def test_reconstruction_figure_shows_visible_patches_and_predictions():
    images = torch.rand(1, 1, 8, 8)
    pred = torch.full((1, 4, 16), 0.25)
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # patches 0 and 3 removed
    fig = viz.show_reconstructions(images, pred, mask, 4)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    seen, pasted = torch.tensor(shown[1]), torch.tensor(shown[2])
    assert torch.all(seen[:4, :4] == 0.5) and torch.equal(seen[:4, 4:], images[0, 0, :4, 4:])
    assert torch.all(pasted[:4, :4] == 0.25) and torch.equal(pasted[4:, :4], images[0, 0, 4:, :4])


def test_explorer_updates_its_label():
    box = widgets.patch_explorer(data.photo("chelsea", 64), resolutions=(64, 128), patch_sizes=(8, 16))
    sliders, label = box.children[0].children, box.children[1]
    assert "64x64 px, patch 16: 4x4 grid, 17 tokens" in label.value  # 224 and 16 absent: the first size
    sliders[0].value = 128
    sliders[1].value = 16
    assert "128x128 px, patch 16: 8x8 grid, 65 tokens" in label.value

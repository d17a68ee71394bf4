import io
import math
from contextlib import redirect_stderr
from unittest import mock

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from vitcourse import data, train, viz, widgets
from vitcourse.models.patches import patchify

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


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


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def _shown(fig) -> list:
    """The axes that show an image, in order."""
    return [ax for ax in fig.axes if ax.images]


@pytest.mark.chapter("01-patches")
def test_patch_grid_numbers_every_patch():
    fig = viz.show_patch_grid(data.photo("chelsea", 64), 16)
    (ax,) = fig.axes
    assert ax.images[0].get_array().shape == (64, 64, 3)
    assert ax.get_title() == "64x64 px, patch 16: 4x4 = 16 patches"
    assert sorted(int(t.get_text()) for t in ax.texts) == list(range(16))  # row-major numbers
    assert len(ax.lines) == 5 + 5  # the grid: 5 horizontal and 5 vertical lines


@pytest.mark.chapter("01-patches")
def test_patch_sequence_shows_the_tokens_in_order():
    cat = data.photo("chelsea", 64)
    fig = viz.show_patch_sequence(patchify(cat[None], 16)[0], 16)
    tiles = _shown(fig)
    assert len(tiles) == 16 and all(ax.images[0].get_array().shape == (16, 16, 3) for ax in tiles)
    assert [ax.get_title() for ax in tiles] == [str(i) for i in range(16)]
    torch.testing.assert_close(torch.tensor(tiles[5].images[0].get_array()), cat[:, 16:32, 16:32].permute(1, 2, 0))
    assert fig._suptitle.get_text() == "the first 16 of 16 tokens, in sequence order"


@pytest.mark.chapter("01-patches", "05-dino", "09-vlm")
def test_image_grid_has_a_panel_and_a_title_per_image():
    fig = viz.show_images(torch.rand(3, 1, 8, 8), titles=["a", "b", "c"], ncols=2, title="three images")
    assert [ax.get_title() for ax in _shown(fig)] == ["a", "b", "c"]
    assert all(ax.images[0].get_array().shape == (8, 8) for ax in _shown(fig))
    assert len(fig.axes) == 4 and not fig.axes[3].axison  # 2 x 2 grid, the fourth cell empty
    assert fig._suptitle.get_text() == "three images"
    wide = viz.show_images(torch.rand(12, 1, 8, 8), ncols=12, size=2.0)
    assert wide.get_figwidth() <= viz.PAGE_WIDTH + 1e-9  # a row never outgrows the page


@pytest.mark.chapter("03-vit", "05-dino")
def test_attention_panels_overlay_each_head_on_the_image():
    cat = data.photo("chelsea", 64)
    fig = viz.show_attention(cat, torch.rand(2, 4, 4))
    assert _titles(fig) == ["image", "head 0", "head 1"]
    assert [len(ax.images) for ax in fig.axes] == [1, 2, 2]  # the image, then image + map
    assert fig.axes[1].images[1].get_array().shape == (64, 64)  # the map upsampled to the image
    assert _titles(viz.show_attention(cat, torch.rand(4, 4), titles=["last block"])) == ["image", "last block"]


@pytest.mark.chapter("01-patches")
def test_explorer_panel_shows_each_setting():
    fig = widgets.static_patch_panel(data.photo("chelsea", 128))
    assert [t.split("\n")[1] for t in _titles(fig)] == ["50 tokens", "197 tokens", "257 tokens", "577 tokens"]
    assert [ax.images[0].get_array().shape[:2] for ax in fig.axes] == [(224, 224)] * 3 + [(336, 336)]


@pytest.mark.chapter("03-vit")
def test_training_history_plots_loss_per_step_and_accuracy_per_epoch():
    h = train.History(step=[1, 2, 3], loss=[2.0, 1.5, 1.0], epoch=[1], train_acc=[0.5], test_acc=[0.4])
    fig = viz.plot_history(h, "run")
    loss_ax, acc_ax = fig.axes
    assert list(loss_ax.lines[0].get_ydata()) == [2.0, 1.5, 1.0] and loss_ax.get_ylabel() == "training loss"
    assert [line.get_label() for line in acc_ax.lines] == ["train", "test"] and acc_ax.get_xlabel() == "epoch"
    assert fig._suptitle.get_text() == "run"


@pytest.mark.chapter("05-dino")
def test_collapse_figure_has_one_curve_per_run_and_log_k():
    runs = {name: {"teacher_entropy": [1.0, 2.0], "marginal_entropy": [2.0, 3.0], "kl": [0.5, 0.4]}
            for name in ("no centering", "no sharpening", "both")}
    fig = viz.plot_collapse(runs, K=64)
    assert _titles(fig) == ["teacher entropy per image", "entropy of the batch average", "KL(teacher || student)"]
    assert [len(ax.lines) for ax in fig.axes] == [4, 4, 3]  # three runs, and log K on the two entropies
    assert fig.axes[0].lines[3].get_ydata()[0] == pytest.approx(math.log(64))
    (legend,) = fig.legends  # below the panels, over no curve
    assert [t.get_text() for t in legend.get_texts()] == ["no centering", "no sharpening", "both",
                                                          "log K = 4.16, uniform"]
    assert all(ax.get_legend() is None for ax in fig.axes)


@pytest.mark.chapter("08-registers")
def test_norm_figures():
    tokens = torch.randn(2, 16, 8)
    fig = viz.plot_norm_histograms({"a": tokens, "b": tokens.norm(dim=-1)}, threshold=3.0, bins=20)
    (ax,) = fig.axes
    assert len(ax.patches) == 2 * 20 and ax.get_yscale() == "log"  # two histograms of 20 bins
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "threshold 3.00"]
    assert ax.lines[0].get_xdata()[0] == 3.0
    fig = viz.plot_norm_map(tokens[0].norm(dim=-1), (4, 4), title="one image")
    image_ax, colorbar = fig.axes
    torch.testing.assert_close(torch.tensor(image_ax.images[0].get_array()), tokens[0].norm(dim=-1).reshape(4, 4))
    assert image_ax.get_title() == "one image"


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

"""vitcourse.diagrams (architecture schematics) and vitcourse.explorer (sliders that work on the static site)."""

import json
import re

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from vitcourse import data, diagrams, explorer, widgets
from vitcourse.augment import MultiCrop
from vitcourse.models.dino import DINOLoss
from vitcourse.models.mae import MAE
from vitcourse.models.swin import SwinBlock
from vitcourse.models.vit import Block, ViT

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def texts(fig) -> str:
    """Every string drawn in the figure (titles and labels included), joined."""
    return " | ".join(t.get_text() for t in fig.findobj(Text))


def meta(**kwargs):
    with torch.device("meta"):
        return ViT(**kwargs)


@pytest.mark.chapter("03-vit")
def test_vit_pipeline_reads_its_numbers_from_the_model():
    small = texts(diagrams.vit_pipeline(meta(img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=4,
                                             num_classes=10)))
    assert "17 tokens of width 48" in small and "4×4 = 16 patches" in small and "3 × pre-norm block" in small
    assert "8×8×3 = 192 values" in small and "48 → 10" in small and "17 rows" in small
    base = texts(diagrams.vit_pipeline(meta()))
    assert "197 tokens of width 768" in base and "14×14 = 196 patches" in base


@pytest.mark.chapter("03-vit")
def test_encoder_block_shows_both_orders_with_the_block_sizes():
    drawn = texts(diagrams.encoder_block(Block(64, 4)))
    assert "4 heads of 16" in drawn and "MLP 64→256→64" in drawn
    assert "post-norm" in drawn and "pre-norm" in drawn
    assert drawn.count("LayerNorm") >= 4


@pytest.mark.chapter("04-deit")
def test_deit_tokens_needs_a_distilled_model_and_counts_its_tokens():
    drawn = texts(diagrams.deit_tokens(meta(embed_dim=384, depth=12, num_heads=6, distilled=True)))
    assert "198 tokens" in drawn and "198 position rows" in drawn and "384→1000" in drawn
    with pytest.raises(ValueError, match="distilled=True"):
        diagrams.deit_tokens(meta())


@pytest.mark.chapter("05-dino")
def test_dino_loop_reads_crops_and_temperatures():
    drawn = texts(diagrams.dino_loop(MultiCrop(num_local=6, local_size=96), DINOLoss(64, teacher_temp=0.07)))
    assert "6 local crops (96 px)" in drawn and "14 teacher–student pairs" in drawn  # 2 x (8 - 1)
    assert "/ 0.07" in drawn and "/ 0.1" in drawn


@pytest.mark.chapter("06-mae")
def test_mae_flow_masks_the_announced_number_of_patches():
    with torch.device("meta"):
        model = MAE(img_size=224, patch_size=16, in_chans=3, embed_dim=64, depth=2, num_heads=4)
        fig = diagrams.mae_flow(model, mask_ratio=0.75)  # works inside the meta-device context too
    drawn = texts(fig)
    assert "encoder on 49 + 1 tokens" in drawn and "decoder on 196 + 1" in drawn and "147 removed" in drawn
    grey = [p for p in fig.axes[0].patches if isinstance(p, Rectangle) and
            matplotlib.colors.to_hex(p.get_facecolor()) == diagrams.COLORS["mask"]]
    assert len(grey) == 147 + 3  # the grid's removed patches and the three mask tokens of the sketch


@pytest.mark.chapter("07-swin")
def test_swin_windows_checks_the_grid():
    fig = diagrams.swin_windows(SwinBlock(8, 2, window_size=4, shift_size=2), grid=8)
    assert "shifted by 2" in texts(fig) and len(fig.axes) == 3
    with pytest.raises(ValueError, match="multiple of the window size 4"):
        diagrams.swin_windows(SwinBlock(8, 2, window_size=4), grid=10)


@pytest.mark.chapter("08-registers")
def test_register_tokens_position_rows_by_convention():
    reg = dict(img_size=224, patch_size=14, embed_dim=384, depth=12, num_heads=6, num_registers=4)
    assert "DINOv2's code adds 257 position rows" in texts(diagrams.register_tokens(meta(**reg, no_embed_class=True)))
    assert "this model adds 256" in texts(diagrams.register_tokens(meta(**reg, no_embed_class=True), "model"))
    assert "this model adds 261" in texts(diagrams.register_tokens(meta(**reg), "model"))
    with pytest.raises(ValueError, match="convention"):
        diagrams.register_tokens(meta(**reg), "timm")


def _render(a, b_value):
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, a], [0, b_value])
    return fig, f"a={a}, b={b_value}"


@pytest.mark.chapter("01-patches")
def test_static_explorer_renders_every_setting_and_starts_where_asked():
    e = explorer.static_explorer({"a": [1, 2, 3], "b value": [0.5, 1.0]}, _render, initial={"a": 2})
    assert len(e.frames) == 6 and len(e.images) == 6
    assert e.frame()[1] == "a=2, b=0.5"
    assert e.frame({"b value": 1.0})[1] == "a=2, b=1.0"
    html = e._repr_html_()
    assert html.count('type="range"') == 2 and 'value="1"' in html  # the second of a's values
    payload = json.loads(re.search(r'<script type="application/json">(.*?)</script>', html).group(1))
    assert payload["frames"]["2|1"][1] == "a=3, b=1.0"  # keys are slider positions
    with pytest.raises(ValueError, match="not one of the slider's values"):
        explorer.static_explorer({"a": [1, 2]}, _render, initial={"a": 5})
    with pytest.raises(ValueError, match="no values"):
        explorer.static_explorer({"a": []}, _render)


def test_identical_pictures_are_stored_once():
    e = explorer.static_explorer({"x": [1, 2, 3]}, lambda x: (Figure(figsize=(1, 1)), str(x)))
    assert len(e.images) == 1 and len(e.frames) == 3


@pytest.mark.chapter("01-patches")
def test_static_patch_explorer_frames_match_the_live_label():
    e = widgets.static_patch_explorer(data.photo("chelsea", 64), resolutions=(64, 128), patch_sizes=(8, 16))
    assert len(e.frames) == 4
    assert widgets.describe_setting(128, 16) in e.frame({"resolution": 128, "patch size": 16})[1]
    assert e.frame({"resolution": 64, "patch size": 8})[0] != e.frame({"resolution": 128, "patch size": 16})[0]

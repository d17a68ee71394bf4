"""vitcourse.convert for Swin: the configuration is read from the source, and a bad key is named."""

import pytest
import timm
import torch
import torchvision

from vitcourse.convert import from_timm, from_torchvision
from vitcourse.convert.swin import swin_from_timm
from vitcourse.models.swin import SwinTransformer


def test_timm_config_is_read():
    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, embed_dim=48,
                              depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16), num_classes=10).eval()
    ours = from_timm(model).eval()
    assert isinstance(ours, SwinTransformer)
    assert [len(s) for s in ours.stages] == [2, 2, 2, 2] and ours.num_features == 384
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (ours(x) - model(x)).abs().max() <= 1e-5


def test_torchvision_last_stage_has_no_shift():
    ours = from_torchvision(torchvision.models.swin_t(weights=None))
    assert [b.shift_size for b in ours.stages[3]] == [0, 0]
    assert [b.shift_size for b in ours.stages[2]] == [0, 3, 0, 3, 0, 3]


def test_mismatching_key_is_named():
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    model.layers[1].blocks[0].register_buffer("surprise", torch.zeros(1))
    with pytest.raises(KeyError, match=r"stages\.1\.0\.surprise"):
        swin_from_timm(model)
